"""The normalize stage: topics and payloads of every format -> canonical readings, or
rejections kept in the quarantine. Pure but for the quarantine file."""
