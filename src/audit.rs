//! The audit record (IHE BALP / FHIR AuditEvent shaped JSON). Pure.
