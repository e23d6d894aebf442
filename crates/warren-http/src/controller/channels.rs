//! `/api/channels`: second phase, not routed yet. Channel listings (prefetch,
//! unacked counts, consumer counts) come from the core's connection registry
//! once it tracks channels.
