//! Reference HQ server. Filled in by the HQ issue.
