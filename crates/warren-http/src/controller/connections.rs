//! `/api/connections[/NAME]` (GET; DELETE closes): second phase. It needs the
//! core's connection registry to carry protocol, peer, client properties,
//! channels and octet counters (being added in `warren_core::connections`);
//! until then this controller is not routed, so the API answers 404 rather
//! than made-up figures.
