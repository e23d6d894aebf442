//! How much memory the message store may hold for speed: the queues' shared
//! in-memory windows (the heads of queues, [`super::spill::SpillDir`]) and
//! the log's appended-but-unwritten records ([`super::log::MessageLog`]'s
//! publisher backpressure).
//!
//! Why a fraction of the memory watermark and not fixed sizes: both are
//! memory the alarm cannot take back. A window keeps its messages until they
//! are delivered, and pending writes are already accepted. With a fixed
//! 64 MiB and 32 MiB, a broker given a 48 MiB watermark filled its windows past the
//! watermark under a publish flood (the alarm then stays on until consumers
//! drain, and RSS sits ~100 MiB above the watermark), while a broker given
//! 10 GiB paged its backlogs out at 64 MiB as if memory were scarce. So both
//! scale with the watermark: 1/16 of it for the windows, 1/32 for pending
//! writes (a 1 GiB watermark gives the old 64 MiB and 32 MiB), with floors
//! (below them, paging and fsync batching get too small to be efficient)
//! and ceilings (beyond them, more memory buys no speed, only RSS).

/// The store's memory allowances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget {
    /// Bytes (bodies and properties) all queues' windows hold together...
    pub window_bytes: usize,
    /// ...and messages.
    pub window_messages: usize,
    /// Above this many bytes appended and not yet written, publishers wait.
    pub max_pending: usize,
}

const MIB: u64 = 1024 * 1024;
const WINDOW_FLOOR: u64 = 4 * MIB;
const WINDOW_CEILING: u64 = 256 * MIB;
const PENDING_FLOOR: u64 = 4 * MIB;
const PENDING_CEILING: u64 = 128 * MIB;
/// Messages per window byte: one per KiB (64k messages in 64 MiB)...
const BYTES_PER_MESSAGE: usize = 1024;
/// ...but never fewer than this many (small messages, small watermark).
const MESSAGES_FLOOR: usize = 4096;

impl MemoryBudget {
    /// The budget for a broker whose memory alarm goes off at `watermark`
    /// bytes.
    pub fn for_watermark(watermark: u64) -> MemoryBudget {
        let window = (watermark / 16).clamp(WINDOW_FLOOR, WINDOW_CEILING) as usize;
        MemoryBudget {
            window_bytes: window,
            window_messages: (window / BYTES_PER_MESSAGE).max(MESSAGES_FLOOR),
            max_pending: (watermark / 32).clamp(PENDING_FLOOR, PENDING_CEILING) as usize,
        }
    }

    /// This budget with `bytes` of windows instead (`[storage]
    /// queue_window_bytes`), the message count following.
    pub fn with_window_bytes(self, bytes: u64) -> MemoryBudget {
        let window = bytes.max(1) as usize;
        MemoryBudget {
            window_bytes: window,
            window_messages: (window / BYTES_PER_MESSAGE).max(MESSAGES_FLOOR),
            ..self
        }
    }
}

impl Default for MemoryBudget {
    /// What a 1 GiB watermark gives (and what the store had before it scaled):
    /// 64 MiB of windows, 64k messages, 32 MiB pending.
    fn default() -> Self {
        MemoryBudget::for_watermark(1024 * MIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_with_the_watermark_between_floor_and_ceiling() {
        let d = MemoryBudget::default();
        assert_eq!(
            (d.window_bytes, d.window_messages, d.max_pending),
            (64 << 20, 64 << 10, 32 << 20)
        );
        let small = MemoryBudget::for_watermark(48 * MIB);
        assert_eq!((small.window_bytes, small.max_pending), (4 << 20, 4 << 20));
        assert_eq!(small.window_messages, 4096);
        let big = MemoryBudget::for_watermark(10 << 30);
        assert_eq!((big.window_bytes, big.max_pending), (256 << 20, 128 << 20));
        let mid = MemoryBudget::for_watermark(2 << 30);
        assert_eq!((mid.window_bytes, mid.max_pending), (128 << 20, 64 << 20));
    }
}
