//! SMART App Launch 2.2 scope grammar (v1 and v2, granular). Pure.
