//! Agent-HQ sync types. Filled in by the HQ issue.
