//! The broadcast state pattern: rules broadcast to every subtask, read by a keyed (or
//! plain) function, kept in checkpoints and restored at another parallelism.

use std::time::Duration;

use superflow::prelude::*;

const EVENTS: u64 = 6_000;

/// Events `(category, amount)`; rules `(category, threshold)`.
fn event(i: u64) -> (u64, u64) {
    (i % 5, i % 100)
}

fn rules() -> Vec<(u64, u64)> {
    vec![(0, 90), (1, 50), (2, 99), (3, 0), (4, 75)]
}

/// Counts, per category, the events above the category's threshold; reports when the
/// input ends (an event-time timer at the end), so the result does not depend on
/// whether a rule or an event arrived first.
#[derive(Clone)]
struct AboveThreshold {
    thresholds: MapStateDescriptor<u64, u64>,
    amounts: ListStateDescriptor<u64>,
}

impl KeyedBroadcastProcessFunction<u64, (u64, u64), (u64, u64), String, u64, u64>
    for AboveThreshold
{
    fn process_element(
        &mut self,
        value: (u64, u64),
        ctx: &mut KeyedReadOnlyContext<'_, u64, u64, u64>,
        _out: &mut Collector<String>,
    ) -> Result<(), UserError> {
        ctx.get_list_state(&self.amounts).add(value.1);
        ctx.timer_service().register_event_time_timer(i64::MAX - 1);
        Ok(())
    }

    fn process_broadcast_element(
        &mut self,
        rule: (u64, u64),
        ctx: &mut BroadcastContext<'_, u64, u64>,
        _out: &mut Collector<String>,
    ) -> Result<(), UserError> {
        ctx.get_broadcast_state(&self.thresholds)
            .insert(rule.0, rule.1);
        Ok(())
    }

    fn on_timer(
        &mut self,
        _time: i64,
        ctx: &mut KeyedReadOnlyContext<'_, u64, u64, u64>,
        out: &mut Collector<String>,
    ) -> Result<(), UserError> {
        let category = *ctx.get_current_key();
        let threshold = ctx
            .get_broadcast_state(&self.thresholds)
            .get(&category)
            .copied()
            .ok_or_else(|| format!("no rule for category {category}"))?;
        let amounts = ctx.get_list_state(&self.amounts).get();
        let above = amounts.iter().filter(|a| **a > threshold).count();
        out.collect(format!("{category} {above}"));
        Ok(())
    }
}

fn expected() -> Vec<String> {
    let rules = rules();
    let mut lines: Vec<String> = rules
        .iter()
        .map(|(category, threshold)| {
            let above = (0..EVENTS)
                .map(event)
                .filter(|(c, a)| c == category && a > threshold)
                .count();
            format!("{category} {above}")
        })
        .collect();
    lines.sort();
    lines
}

fn descriptor() -> MapStateDescriptor<u64, u64> {
    MapStateDescriptor::new("thresholds")
}

fn job(
    env: &StreamExecutionEnvironment,
    rate: Option<f64>,
    fail_at: Option<u64>,
) -> DataStream<String> {
    let rules = env
        .from_collection(rules())
        .uid("rules")
        .broadcast_with(&[descriptor()]);
    env.from_generator(event_with_index, Some(EVENTS), rate)
        .uid("events")
        .map(move |(i, e): (u64, (u64, u64))| {
            if Some(i) == fail_at {
                panic!("failing at event {i}");
            }
            e
        })
        .uid("check")
        .key_by(|e: &(u64, u64)| e.0)
        .connect_broadcast(&rules)
        .process(AboveThreshold {
            thresholds: descriptor(),
            amounts: ListStateDescriptor::new("amounts"),
        })
        .uid("above-threshold")
}

fn event_with_index(i: u64) -> (u64, (u64, u64)) {
    (i, event(i))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn a_keyed_function_reads_the_broadcast_rules() -> Result<(), JobError> {
    for parallelism in [1, 2, 4] {
        let env = StreamExecutionEnvironment::get_execution_environment();
        env.set_parallelism(parallelism);
        let out = job(&env, None, None).execute_and_collect()?;
        assert_eq!(sorted(out), expected(), "parallelism {parallelism}");
    }
    Ok(())
}

/// Tags each number with whether the broadcast set names it.
#[derive(Clone)]
struct Tag(MapStateDescriptor<u64, bool>);

impl BroadcastProcessFunction<u64, u64, (u64, bool), u64, bool> for Tag {
    fn process_element(
        &mut self,
        value: u64,
        ctx: &ReadOnlyContext<'_, u64, bool>,
        out: &mut Collector<(u64, bool)>,
    ) -> Result<(), UserError> {
        out.collect((value, ctx.get_broadcast_state(&self.0).contains(&value)));
        Ok(())
    }

    fn process_broadcast_element(
        &mut self,
        value: u64,
        ctx: &mut BroadcastContext<'_, u64, bool>,
        _out: &mut Collector<(u64, bool)>,
    ) -> Result<(), UserError> {
        ctx.get_broadcast_state(&self.0).insert(value, true);
        Ok(())
    }
}

#[test]
fn a_plain_function_sees_broadcast_state_on_every_subtask() -> Result<(), JobError> {
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(3);
    let marked = MapStateDescriptor::<u64, bool>::new("marked");
    let broadcast = env
        .from_collection(vec![7u64])
        .broadcast_with(std::slice::from_ref(&marked));
    // The plain side is slow enough that the broadcast reaches every subtask early.
    let out = env
        .from_generator(|i| i % 10, Some(3_000), Some(10_000.0))
        .connect_broadcast(&broadcast)
        .process_plain(Tag(marked))
        .execute_and_collect()?;
    assert_eq!(out.len(), 3_000);
    assert!(out.iter().all(|(v, tagged)| !tagged || *v == 7));
    let sevens = out.iter().filter(|(v, tagged)| *v == 7 && *tagged).count();
    assert!(sevens >= 150, "{sevens} of 300 sevens were tagged");
    Ok(())
}

#[test]
fn broadcast_state_is_restored_at_another_parallelism() -> Result<(), Box<dyn std::error::Error>> {
    let root = tempfile::tempdir()?;
    let storage = root.path().join("checkpoints");
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(2);
    env.enable_checkpointing(Duration::from_millis(25));
    let dir = storage.clone();
    env.configure_checkpoints(move |c| c.storage = dir);
    env.set_restart_strategy(RestartStrategy::None);
    job(&env, Some(15_000.0), Some(4_000))
        .execute_and_collect()
        .err()
        .ok_or("the first run fails")?;

    // The rules source finished in the first run: after the restore only the broadcast
    // state holds the rules.
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(3);
    env.set_restore_path(&storage);
    let out = job(&env, None, None).execute_and_collect()?;
    assert_eq!(sorted(out), expected());
    Ok(())
}
