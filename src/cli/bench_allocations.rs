//! Heap allocations per message for `kombu bench`: with the `count-allocations` feature the `kombu`
//! binary's global allocator counts (stats_alloc), and each phase of the workload reports how many
//! allocations it made per message and how many bytes they asked for, in every thread of the process
//! (lapin's, tokio's and the Hub's too). Bytes allocated per message against the body's size tell how
//! many times a body is copied on its way. Without the feature, nothing is counted and nothing reported.

/// Allocations of one phase, per message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerMessage {
    /// Allocations (and reallocations) per message.
    pub allocations: f64,
    /// Bytes asked for per message (reallocations count what they grew by).
    pub bytes: f64,
}

/// Counts the allocations of a phase, from [`Phase::start`] to [`Phase::per_message`].
pub(super) struct Phase {
    #[cfg(feature = "count-allocations")]
    region: stats_alloc::Region<'static, std::alloc::System>,
}

impl Phase {
    pub(super) fn start() -> Phase {
        Phase {
            #[cfg(feature = "count-allocations")]
            region: stats_alloc::Region::new(&stats_alloc::INSTRUMENTED_SYSTEM),
        }
    }

    /// What the phase allocated for `n` messages; `None` when allocations are not counted (the feature
    /// is off, or this process's allocator is not the counting one: no phase allocates nothing).
    pub(super) fn per_message(&self, n: u64) -> Option<PerMessage> {
        #[cfg(feature = "count-allocations")]
        {
            let change = self.region.change();
            let allocations = (change.allocations + change.reallocations) as f64;
            let bytes = change.bytes_allocated as f64 + change.bytes_reallocated.max(0) as f64;
            per_message(allocations, bytes, n)
        }
        #[cfg(not(feature = "count-allocations"))]
        {
            let _ = n;
            None
        }
    }
}

/// Per-message figures of counted totals (none if nothing was counted).
fn per_message(allocations: f64, bytes: f64, n: u64) -> Option<PerMessage> {
    (allocations > 0.0 && n > 0).then(|| PerMessage { allocations: allocations / n as f64, bytes: bytes / n as f64 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_shared_out_per_message_and_nothing_counted_is_none() {
        assert_eq!(per_message(300.0, 6000.0, 100), Some(PerMessage { allocations: 3.0, bytes: 60.0 }));
        assert_eq!(per_message(0.0, 0.0, 100), None, "not counted");
        assert_eq!(per_message(5.0, 10.0, 0), None);
        // The test binary's allocator is the system's: not counted, even with the feature.
        let phase = Phase::start();
        let kept: Vec<Vec<u8>> = (0..10).map(|i| vec![0; i]).collect();
        assert_eq!(phase.per_message(10), None);
        drop(kept);
    }
}
