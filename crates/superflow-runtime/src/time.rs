//! Event time and processing time inside the runtime: the in-band watermark message,
//! the per-input channel tracking that turns many upstream watermarks into one (the
//! minimum over the non-idle channels, as Flink's watermark valve does), the wall clock,
//! and the wake-up requests stages make for processing-time timers.
//!
//! Watermarks are independent of epochs: an operator sends one as a batch of its own
//! kind on its output stream, stamped with the channel it comes from (the producing
//! operator and subtask). An exchange hands a copy to every worker.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A watermark or idleness message of one channel (one subtask of one operator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatermarkMessage {
    /// The producing operator (its timely operator index).
    pub origin: u32,
    /// The producing subtask.
    pub subtask: u32,
    /// The watermark: no record with a timestamp at or below it is expected any more.
    pub value: i64,
    /// Whether the channel declares itself idle (its watermark does not hold others back).
    pub idle: bool,
}

/// What flows down a chain when an operator's combined input watermark changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatermarkEvent {
    /// Event time has advanced to this watermark.
    Watermark(i64),
    /// Every input channel is idle.
    Idle,
}

/// The watermark that closes a bounded input: every pending event-time timer fires.
pub const MAX_WATERMARK: i64 = i64::MAX;

/// One upstream channel an input expects watermarks from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelId {
    /// Which input of the operator (0 or 1).
    pub input: u8,
    /// The producing operator.
    pub origin: u32,
    /// The producing subtask.
    pub subtask: u32,
}

#[derive(Debug, Clone, Copy)]
struct ChannelState {
    id: ChannelId,
    watermark: i64,
    idle: bool,
    /// A channel that returns from idleness behind the combined watermark is left out of
    /// the minimum until it catches up, so the output watermark never goes back.
    aligned: bool,
}

/// Combines the watermarks of all channels an operator reads into one.
#[derive(Debug, Clone)]
pub struct WatermarkTracker {
    channels: Vec<ChannelState>,
    current: i64,
    idle: bool,
}

impl WatermarkTracker {
    /// A tracker expecting watermarks from `channels`; each starts at `i64::MIN`.
    pub fn new(channels: Vec<ChannelId>) -> WatermarkTracker {
        WatermarkTracker {
            channels: channels
                .into_iter()
                .map(|id| ChannelState {
                    id,
                    watermark: i64::MIN,
                    idle: false,
                    aligned: true,
                })
                .collect(),
            current: i64::MIN,
            idle: false,
        }
    }

    /// The combined watermark so far.
    pub fn current(&self) -> i64 {
        self.current
    }

    /// Takes one channel's message; returns what changed downstream, if anything.
    pub fn update(&mut self, input: u8, message: &WatermarkMessage) -> Option<WatermarkEvent> {
        let current = self.current;
        let channel = self.channels.iter_mut().find(|c| {
            c.id.input == input && c.id.origin == message.origin && c.id.subtask == message.subtask
        })?;
        if message.idle {
            channel.idle = true;
        } else {
            if channel.idle {
                channel.idle = false;
                channel.aligned = false;
            }
            channel.watermark = channel.watermark.max(message.value);
            if channel.watermark >= current {
                channel.aligned = true;
            }
        }
        self.combine()
    }

    fn combine(&mut self) -> Option<WatermarkEvent> {
        let mut active = self
            .channels
            .iter()
            .filter(|c| !c.idle && c.aligned)
            .peekable();
        if active.peek().is_none() {
            let all_idle = self.channels.iter().all(|c| c.idle);
            if all_idle != self.idle && !self.channels.is_empty() {
                self.idle = all_idle;
                return Some(if all_idle {
                    WatermarkEvent::Idle
                } else {
                    WatermarkEvent::Watermark(self.current)
                });
            }
            return None;
        }
        let min = active.map(|c| c.watermark).min().unwrap_or(i64::MIN);
        if min > self.current {
            self.current = min;
            self.idle = false;
            return Some(WatermarkEvent::Watermark(min));
        }
        if self.idle {
            self.idle = false;
            return Some(WatermarkEvent::Watermark(self.current));
        }
        None
    }
}

/// Milliseconds since the Unix epoch: Flink's processing time.
pub fn processing_time_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The earliest processing time at which a chain's stages want to be called again
/// (their next processing-time timer or periodic duty). Shared by the stages of one
/// operator; the operator schedules its own activation from it.
#[derive(Debug, Clone, Default)]
pub struct WakeUp(Rc<Cell<Option<i64>>>);

impl WakeUp {
    /// Asks for a call of `on_processing_time` at or after `at` (ms since the epoch).
    pub fn request(&self, at: i64) {
        let next = match self.0.get() {
            Some(t) => t.min(at),
            None => at,
        };
        self.0.set(Some(next));
    }

    /// The earliest requested time, if any.
    pub fn next(&self) -> Option<i64> {
        self.0.get()
    }

    /// Takes the request if it is due at `now`.
    pub fn take_due(&self, now: i64) -> bool {
        match self.0.get() {
            Some(t) if t <= now => {
                self.0.set(None);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(origin: u32, subtask: u32, value: i64) -> WatermarkMessage {
        WatermarkMessage {
            origin,
            subtask,
            value,
            idle: false,
        }
    }

    fn idle(origin: u32, subtask: u32) -> WatermarkMessage {
        WatermarkMessage {
            origin,
            subtask,
            value: 0,
            idle: true,
        }
    }

    fn channels(input: u8, origin: u32, n: u32) -> Vec<ChannelId> {
        (0..n)
            .map(|subtask| ChannelId {
                input,
                origin,
                subtask,
            })
            .collect()
    }

    #[test]
    fn the_watermark_is_the_minimum_over_channels() {
        let mut t = WatermarkTracker::new(channels(0, 1, 2));
        assert_eq!(t.update(0, &msg(1, 0, 10)), None);
        assert_eq!(
            t.update(0, &msg(1, 1, 5)),
            Some(WatermarkEvent::Watermark(5))
        );
        assert_eq!(
            t.update(0, &msg(1, 1, 20)),
            Some(WatermarkEvent::Watermark(10))
        );
        // A channel's watermark never goes back.
        assert_eq!(t.update(0, &msg(1, 0, 3)), None);
        assert_eq!(t.current(), 10);
        // Unknown channels (an inactive subtask's copy) are ignored.
        assert_eq!(t.update(0, &msg(9, 0, 100)), None);
    }

    #[test]
    fn two_inputs_take_the_minimum_of_both() {
        let mut all = channels(0, 1, 1);
        all.extend(channels(1, 2, 1));
        let mut t = WatermarkTracker::new(all);
        assert_eq!(t.update(0, &msg(1, 0, 50)), None);
        assert_eq!(
            t.update(1, &msg(2, 0, 30)),
            Some(WatermarkEvent::Watermark(30))
        );
        assert_eq!(
            t.update(1, &msg(2, 0, 70)),
            Some(WatermarkEvent::Watermark(50))
        );
    }

    #[test]
    fn idle_channels_do_not_hold_the_watermark_back() {
        let mut t = WatermarkTracker::new(channels(0, 1, 2));
        assert_eq!(t.update(0, &msg(1, 0, 10)), None);
        assert_eq!(
            t.update(0, &idle(1, 1)),
            Some(WatermarkEvent::Watermark(10))
        );
        assert_eq!(t.update(0, &idle(1, 0)), Some(WatermarkEvent::Idle));
        // A channel returning behind the combined watermark does not pull it back.
        assert_eq!(
            t.update(0, &msg(1, 1, 4)),
            Some(WatermarkEvent::Watermark(10))
        );
        assert_eq!(
            t.update(0, &msg(1, 1, 12)),
            Some(WatermarkEvent::Watermark(12))
        );
    }

    #[test]
    fn wake_up_keeps_the_earliest_request() {
        let w = WakeUp::default();
        w.request(100);
        w.request(50);
        assert_eq!(w.next(), Some(50));
        assert!(!w.take_due(49));
        assert!(w.take_due(50));
        assert_eq!(w.next(), None);
    }
}
