//! Windows and window assigners: which windows a record belongs to (Flink's
//! `TimeWindow`, `GlobalWindow` and `CountWindow`, and the tumbling, sliding, session,
//! global and count assigners).

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::triggers::{
    CountTrigger, EventTimeTrigger, NeverTrigger, ProcessingTimeTrigger, PurgingTrigger,
};

/// A window: a group of records a window function sees together.
pub trait Window:
    Clone + Hash + Eq + Ord + Debug + Send + Sync + Serialize + DeserializeOwned + 'static
{
    /// The largest timestamp that belongs to the window; results carry it.
    fn max_timestamp(&self) -> i64;

    /// Whether two windows of a merging assigner overlap, so that they merge.
    fn intersects(&self, _other: &Self) -> bool {
        false
    }

    /// The window covering both (for merging assigners).
    fn cover(&self, _other: &Self) -> Self {
        self.clone()
    }

    /// The window as a time interval, if it is one.
    fn as_time_window(&self) -> Option<TimeWindow> {
        None
    }

    /// A window of this type from a time interval, if the type is a time window.
    fn from_time_window(_window: TimeWindow) -> Option<Self> {
        None
    }
}

/// A time interval `[start, end)` (Flink's `TimeWindow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TimeWindow {
    /// First timestamp of the window (inclusive).
    pub start: i64,
    /// End of the window (exclusive).
    pub end: i64,
}

impl TimeWindow {
    /// The window `[start, end)`.
    pub fn new(start: i64, end: i64) -> TimeWindow {
        TimeWindow { start, end }
    }

    /// Whether the two windows overlap (or touch), so that sessions merge.
    pub fn intersects(&self, other: &TimeWindow) -> bool {
        self.start <= other.end && other.start <= self.end
    }

    /// The smallest window covering both.
    pub fn cover(&self, other: &TimeWindow) -> TimeWindow {
        TimeWindow::new(self.start.min(other.start), self.end.max(other.end))
    }

    /// The start of the window of size `size` (and `offset`) containing `timestamp`.
    pub fn window_start_with_offset(timestamp: i64, offset: i64, size: i64) -> i64 {
        let remainder = (timestamp - offset).rem_euclid(size);
        timestamp - remainder
    }
}

impl Window for TimeWindow {
    #[inline]
    fn max_timestamp(&self) -> i64 {
        self.end - 1
    }
    fn intersects(&self, other: &Self) -> bool {
        TimeWindow::intersects(self, other)
    }
    fn cover(&self, other: &Self) -> Self {
        TimeWindow::cover(self, other)
    }
    fn as_time_window(&self) -> Option<TimeWindow> {
        Some(*self)
    }
    fn from_time_window(window: TimeWindow) -> Option<Self> {
        Some(window)
    }
}

/// The one window of `GlobalWindows`, which never ends by itself.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct GlobalWindow;

impl Window for GlobalWindow {
    fn max_timestamp(&self) -> i64 {
        i64::MAX
    }
}

/// The `id`-th count window of a key (PyFlink's `CountWindow`): the windows of
/// `CountWindows` are numbered per key from 0, in the order they start.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct CountWindow {
    /// The window's number among its key's windows.
    pub id: u64,
}

impl Window for CountWindow {
    fn max_timestamp(&self) -> i64 {
        i64::MAX
    }
}

/// Assigns records to windows.
pub trait WindowAssigner<T>: Send + Sync + 'static {
    /// The kind of window.
    type W: Window;
    /// The trigger used when the job sets none.
    type DefaultTrigger: super::triggers::Trigger<T, Self::W> + Clone;

    /// Puts the windows of `element` (event timestamp `timestamp`, and the current
    /// processing time `now`) into `out`.
    fn assign_windows(&self, element: &T, timestamp: i64, now: i64, out: &mut Vec<Self::W>);

    /// The default trigger of these windows.
    fn default_trigger(&self) -> Self::DefaultTrigger;

    /// Whether windows follow event time (else processing time).
    fn is_event_time(&self) -> bool;

    /// Whether windows of one key merge when they overlap (sessions).
    fn is_merging(&self) -> bool {
        false
    }

    /// For sliding event-time windows: `(size, slide, offset)`, so that the operator can
    /// pre-aggregate per pane instead of copying a record into every window.
    fn sliding_panes(&self) -> Option<(i64, i64, i64)> {
        None
    }

    /// Whether windows follow each key's count of records (count windows): the operator
    /// then numbers each key's records, in its keyed state, and calls `assign_by_count`
    /// instead of `assign_windows`.
    fn counts_records(&self) -> bool {
        false
    }

    /// For assigners that count records: the windows of a key's `index`-th record
    /// (from 0).
    fn assign_by_count(&self, _index: u64, _out: &mut Vec<Self::W>) {}

    /// For assigners that count records: the index of the last record `window` gets.
    /// Once that record is in, nothing more reaches the window, so the operator drops it
    /// when its trigger purges it.
    fn last_record_of(&self, _window: &Self::W) -> Option<u64> {
        None
    }
}

fn millis(d: Duration) -> i64 {
    d.as_millis() as i64
}

macro_rules! tumbling {
    ($name:ident, $event:expr, $trigger:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Copy)]
        pub struct $name {
            size: i64,
            offset: i64,
        }

        impl $name {
            /// Windows of `size`, aligned to the epoch.
            pub fn of(size: Duration) -> Self {
                Self::of_with_offset(size, Duration::ZERO)
            }

            /// Windows of `size`, shifted by `offset` (for example, for time zones).
            pub fn of_with_offset(size: Duration, offset: Duration) -> Self {
                assert!(!size.is_zero(), "a tumbling window needs a size above zero");
                $name {
                    size: millis(size),
                    offset: millis(offset) % millis(size),
                }
            }
        }

        impl<T: 'static> WindowAssigner<T> for $name {
            type W = TimeWindow;
            type DefaultTrigger = $trigger;

            #[inline]
            fn assign_windows(&self, _: &T, timestamp: i64, now: i64, out: &mut Vec<TimeWindow>) {
                let t = if $event { timestamp } else { now };
                let start = TimeWindow::window_start_with_offset(t, self.offset, self.size);
                out.push(TimeWindow::new(start, start + self.size));
            }
            fn default_trigger(&self) -> $trigger {
                $trigger
            }
            fn is_event_time(&self) -> bool {
                $event
            }
        }
    };
}

tumbling!(
    TumblingEventTimeWindows,
    true,
    EventTimeTrigger,
    "Fixed-size, non-overlapping windows in event time."
);
tumbling!(
    TumblingProcessingTimeWindows,
    false,
    ProcessingTimeTrigger,
    "Fixed-size, non-overlapping windows in processing time."
);

macro_rules! sliding {
    ($name:ident, $event:expr, $trigger:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Copy)]
        pub struct $name {
            size: i64,
            slide: i64,
            offset: i64,
        }

        impl $name {
            /// Windows of `size`, one starting every `slide`.
            pub fn of(size: Duration, slide: Duration) -> Self {
                Self::of_with_offset(size, slide, Duration::ZERO)
            }

            /// Windows of `size`, one starting every `slide`, shifted by `offset`.
            pub fn of_with_offset(size: Duration, slide: Duration, offset: Duration) -> Self {
                assert!(
                    !size.is_zero() && !slide.is_zero(),
                    "a sliding window needs a size and a slide above zero"
                );
                $name {
                    size: millis(size),
                    slide: millis(slide),
                    offset: millis(offset) % millis(slide),
                }
            }
        }

        impl<T: 'static> WindowAssigner<T> for $name {
            type W = TimeWindow;
            type DefaultTrigger = $trigger;

            fn assign_windows(&self, _: &T, timestamp: i64, now: i64, out: &mut Vec<TimeWindow>) {
                let t = if $event { timestamp } else { now };
                let last_start = TimeWindow::window_start_with_offset(t, self.offset, self.slide);
                let mut start = last_start;
                while start > t - self.size {
                    out.push(TimeWindow::new(start, start + self.size));
                    start -= self.slide;
                }
            }
            fn default_trigger(&self) -> $trigger {
                $trigger
            }
            fn is_event_time(&self) -> bool {
                $event
            }
            fn sliding_panes(&self) -> Option<(i64, i64, i64)> {
                $event.then_some((self.size, self.slide, self.offset))
            }
        }
    };
}

sliding!(
    SlidingEventTimeWindows,
    true,
    EventTimeTrigger,
    "Fixed-size windows that overlap, one starting every slide, in event time."
);
sliding!(
    SlidingProcessingTimeWindows,
    false,
    ProcessingTimeTrigger,
    "Fixed-size windows that overlap, one starting every slide, in processing time."
);

/// The gap of a session, per record.
pub trait SessionGapExtractor<T>: Send + Sync + 'static {
    /// The gap after `element` that closes its session, in milliseconds.
    fn extract(&self, element: &T) -> i64;
}

impl<T, F: Fn(&T) -> Duration + Send + Sync + 'static> SessionGapExtractor<T> for F {
    fn extract(&self, element: &T) -> i64 {
        millis(self(element))
    }
}

enum Gap<T> {
    Static(i64),
    Dynamic(Arc<dyn SessionGapExtractor<T>>),
}

impl<T> Clone for Gap<T> {
    fn clone(&self) -> Self {
        match self {
            Gap::Static(g) => Gap::Static(*g),
            Gap::Dynamic(f) => Gap::Dynamic(Arc::clone(f)),
        }
    }
}

impl<T: 'static> Gap<T> {
    fn of(&self, element: &T) -> i64 {
        match self {
            Gap::Static(g) => *g,
            Gap::Dynamic(f) => f.extract(element),
        }
    }
}

macro_rules! sessions {
    ($name:ident, $event:expr, $trigger:ident, $doc:literal) => {
        #[doc = $doc]
        pub struct $name<T> {
            gap: Gap<T>,
        }

        impl<T> Clone for $name<T> {
            fn clone(&self) -> Self {
                $name {
                    gap: self.gap.clone(),
                }
            }
        }

        impl<T: 'static> $name<T> {
            /// Sessions that close after `gap` without records of the key.
            pub fn with_gap(gap: Duration) -> Self {
                assert!(!gap.is_zero(), "a session gap must be above zero");
                $name {
                    gap: Gap::Static(millis(gap)),
                }
            }

            /// Sessions whose gap each record sets.
            pub fn with_dynamic_gap<G: SessionGapExtractor<T>>(extractor: G) -> Self {
                $name {
                    gap: Gap::Dynamic(Arc::new(extractor)),
                }
            }
        }

        impl<T: 'static> WindowAssigner<T> for $name<T> {
            type W = TimeWindow;
            type DefaultTrigger = $trigger;

            fn assign_windows(
                &self,
                element: &T,
                timestamp: i64,
                now: i64,
                out: &mut Vec<TimeWindow>,
            ) {
                let t = if $event { timestamp } else { now };
                let gap = self.gap.of(element);
                if gap <= 0 {
                    panic!(
                        "a session gap must be above zero, but the gap extractor returned {gap} ms"
                    );
                }
                out.push(TimeWindow::new(t, t + gap));
            }
            fn default_trigger(&self) -> $trigger {
                $trigger
            }
            fn is_event_time(&self) -> bool {
                $event
            }
            fn is_merging(&self) -> bool {
                true
            }
        }
    };
}

sessions!(
    EventTimeSessionWindows,
    true,
    EventTimeTrigger,
    "Windows of activity per key, closed by a gap without records, in event time."
);
sessions!(
    ProcessingTimeSessionWindows,
    false,
    ProcessingTimeTrigger,
    "Windows of activity per key, closed by a gap without records, in processing time."
);

/// One window per key holding every record; it fires only through a custom trigger.
#[derive(Debug, Clone, Copy, Default)]
pub struct GlobalWindows;

impl GlobalWindows {
    /// The global window assigner.
    pub fn create() -> Self {
        GlobalWindows
    }
}

impl<T: 'static> WindowAssigner<T> for GlobalWindows {
    type W = GlobalWindow;
    type DefaultTrigger = NeverTrigger;

    fn assign_windows(&self, _: &T, _: i64, _: i64, out: &mut Vec<GlobalWindow>) {
        out.push(GlobalWindow);
    }
    fn default_trigger(&self) -> NeverTrigger {
        NeverTrigger
    }
    fn is_event_time(&self) -> bool {
        false
    }
}

/// PyFlink's count windows (`CountTumblingWindowAssigner`, `CountSlidingWindowAssigner`):
/// each key's records are numbered from 0, and record `n` belongs to every window `k`
/// with `k * slide <= n < k * slide + size`. A window fires when it holds `size`
/// records; a custom trigger or evictor may replace that, and triggers see the
/// `CountWindow`. (The Rust `count_window` is Flink Java's: a global window with a
/// count trigger.)
#[derive(Debug, Clone, Copy)]
pub struct CountWindows {
    size: u64,
    slide: u64,
}

impl CountWindows {
    /// Windows of `size` records, one after the other.
    pub fn tumbling(size: u64) -> Self {
        Self::sliding(size, size)
    }

    /// Windows of `size` records, a new one starting every `slide` records.
    pub fn sliding(size: u64, slide: u64) -> Self {
        assert!(
            size > 0 && slide > 0,
            "count windows need a size and a slide above zero"
        );
        CountWindows { size, slide }
    }
}

impl<T: 'static> WindowAssigner<T> for CountWindows {
    type W = CountWindow;
    // Purging frees a full window at once: no record reaches it afterwards, so the
    // purge is not seen (PyFlink's count trigger fires without purging and keeps it).
    type DefaultTrigger = PurgingTrigger<CountTrigger>;

    // The operator calls `assign_by_count`: the windows follow the key's record count.
    fn assign_windows(&self, _: &T, _: i64, _: i64, _: &mut Vec<CountWindow>) {}
    fn default_trigger(&self) -> Self::DefaultTrigger {
        PurgingTrigger::of(CountTrigger::of(self.size))
    }
    fn is_event_time(&self) -> bool {
        false
    }
    fn counts_records(&self) -> bool {
        true
    }
    fn assign_by_count(&self, index: u64, out: &mut Vec<CountWindow>) {
        let mut id = index / self.slide;
        loop {
            if index >= id * self.slide + self.size {
                break;
            }
            out.push(CountWindow { id });
            if id == 0 {
                break;
            }
            id -= 1;
        }
    }
    fn last_record_of(&self, window: &CountWindow) -> Option<u64> {
        Some(window.id * self.slide + self.size - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_windows_hold_size_records_from_every_slide_th() {
        let ids = |a: &CountWindows, n: u64| {
            let mut out = Vec::new();
            WindowAssigner::<u8>::assign_by_count(a, n, &mut out);
            out.iter().map(|w| w.id).collect::<Vec<_>>()
        };
        let tumbling = CountWindows::tumbling(3);
        assert_eq!(
            (0..7).map(|n| ids(&tumbling, n)).collect::<Vec<_>>(),
            vec![
                vec![0],
                vec![0],
                vec![0],
                vec![1],
                vec![1],
                vec![1],
                vec![2]
            ]
        );
        let sliding = CountWindows::sliding(3, 2);
        assert_eq!(ids(&sliding, 0), vec![0]);
        assert_eq!(ids(&sliding, 2), vec![1, 0]);
        assert_eq!(ids(&sliding, 3), vec![1]);
        assert_eq!(ids(&sliding, 4), vec![2, 1]);
        // A slide wider than the size leaves records in no window, as in PyFlink.
        let sparse = CountWindows::sliding(2, 3);
        assert_eq!(ids(&sparse, 1), vec![0]);
        assert!(ids(&sparse, 2).is_empty());
        assert_eq!(ids(&sparse, 3), vec![1]);
        let last =
            |a: &CountWindows, id| WindowAssigner::<u8>::last_record_of(a, &CountWindow { id });
        assert_eq!(last(&sliding, 1), Some(4));
        assert_eq!(last(&tumbling, 2), Some(8));
    }

    fn assign<A: WindowAssigner<u8, W = TimeWindow>>(a: &A, t: i64) -> Vec<TimeWindow> {
        let mut out = Vec::new();
        a.assign_windows(&0, t, 0, &mut out);
        out.sort();
        out
    }

    #[test]
    fn tumbling_windows_align_to_size_and_offset() {
        let a = TumblingEventTimeWindows::of(Duration::from_millis(10));
        assert_eq!(assign(&a, 0), vec![TimeWindow::new(0, 10)]);
        assert_eq!(assign(&a, 9), vec![TimeWindow::new(0, 10)]);
        assert_eq!(assign(&a, 10), vec![TimeWindow::new(10, 20)]);
        assert_eq!(assign(&a, -1), vec![TimeWindow::new(-10, 0)]);
        let o = TumblingEventTimeWindows::of_with_offset(
            Duration::from_millis(10),
            Duration::from_millis(3),
        );
        assert_eq!(assign(&o, 2), vec![TimeWindow::new(-7, 3)]);
        assert_eq!(assign(&o, 3), vec![TimeWindow::new(3, 13)]);
    }

    #[test]
    fn sliding_windows_cover_a_record_size_over_slide_times() {
        let a = SlidingEventTimeWindows::of(Duration::from_millis(10), Duration::from_millis(5));
        assert_eq!(
            assign(&a, 7),
            vec![TimeWindow::new(0, 10), TimeWindow::new(5, 15)]
        );
        assert_eq!(
            assign(&a, 5),
            vec![TimeWindow::new(0, 10), TimeWindow::new(5, 15)]
        );
        assert_eq!(
            assign(&a, 4),
            vec![TimeWindow::new(-5, 5), TimeWindow::new(0, 10)]
        );
    }

    #[test]
    fn sessions_start_at_the_record_and_last_one_gap() {
        let a = EventTimeSessionWindows::<u8>::with_gap(Duration::from_millis(30));
        assert_eq!(assign(&a, 100), vec![TimeWindow::new(100, 130)]);
        let d = EventTimeSessionWindows::<u8>::with_dynamic_gap(|x: &u8| {
            Duration::from_millis(u64::from(*x) + 1)
        });
        assert_eq!(assign(&d, 100), vec![TimeWindow::new(100, 101)]);
        assert!(TimeWindow::new(0, 10).intersects(&TimeWindow::new(10, 20)));
        assert!(!TimeWindow::new(0, 10).intersects(&TimeWindow::new(11, 20)));
    }
}
