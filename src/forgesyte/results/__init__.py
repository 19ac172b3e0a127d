"""Frame results as JSON Lines, paging, the timeline (text segments, object tracks), WebVTT
and preview drawing. Knows no HTTP and no job state."""
