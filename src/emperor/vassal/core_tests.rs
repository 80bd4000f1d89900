//! Every rule of a vassal's lifecycle, driven with a fake clock: no file is read, no process started; each
//! test plays the shell's part (validation outcomes, process events) and reads the core's actions.

use super::*;

const MERCY: Duration = Duration::from_secs(60);

fn limits() -> Limits {
    Limits {
        start_timeout: Duration::from_secs(30),
        heartbeat_timeout: Duration::from_secs(20),
        throttle_base: Duration::from_secs(1),
        throttle_max: Duration::from_secs(8),
    }
}

const PLAN: PlanInfo = PlanInfo { self_managed: false, mercy: MERCY };

struct Harness {
    core: VassalCore,
    start: Instant,
    elapsed: Duration,
    next_pid: i32,
}

impl Harness {
    fn new() -> Self {
        Harness {
            core: VassalCore::new("app".into(), limits()),
            start: Instant::now(),
            elapsed: Duration::ZERO,
            next_pid: 1000,
        }
    }

    fn now(&self) -> Now {
        Now { mono: self.start + self.elapsed, unix: 1_700_000_000.0 + self.elapsed.as_secs_f64() }
    }

    fn advance(&mut self, by: Duration) {
        self.elapsed += by;
    }

    fn command(&mut self, command: Command) -> Vec<Action> {
        let now = self.now();
        self.core.on_command(command, now);
        self.core.take_actions()
    }

    /// Answers a Prepare with `outcome`; returns every action, the Prepare's follow-ups included.
    fn prepare(&mut self, actions: &[Action], outcome: Result<PlanInfo, StartError>) -> Vec<Action> {
        let Some(Action::Prepare { why, .. }) = actions.iter().find(|a| matches!(a, Action::Prepare { .. })) else {
            panic!("no Prepare in {actions:?}");
        };
        let now = self.now();
        self.core.prepared(outcome, why, now);
        self.core.take_actions()
    }

    /// The file changed (or appeared) and is fine: returns the id of the process the core starts.
    fn changed_ok(&mut self) -> u64 {
        let actions = self.command(Command::Changed { problem: None });
        spawned_id(&self.prepare(&actions, Ok(PLAN))).expect("a spawn")
    }

    fn spawned(&mut self, id: u64) -> i32 {
        self.next_pid += 1;
        let now = self.now();
        self.core.on_spawned(id, self.next_pid, now);
        self.core.take_actions();
        self.next_pid
    }

    fn message(&mut self, id: u64, message: VassalMessage) -> Vec<Action> {
        let now = self.now();
        self.core.on_message(id, message, &[], now);
        self.core.take_actions()
    }

    fn ready(&mut self, id: u64, pid: i32) -> Vec<Action> {
        self.message(id, VassalMessage::Ready { pid, workers: Vec::new() })
    }

    fn exit(&mut self, id: u64, how: &str) -> Vec<Action> {
        let now = self.now();
        self.core.on_exit(
            id,
            how.to_owned(),
            &["Traceback (most recent call last):".into(), "ImportError: x".into()],
            now,
        );
        self.core.take_actions()
    }

    fn timers(&mut self) -> Vec<Action> {
        let now = self.now();
        self.core.on_timers(now);
        self.core.take_actions()
    }

    /// A vassal serving with process `id`, pid returned.
    fn running(&mut self) -> (u64, i32) {
        let id = self.changed_ok();
        let pid = self.spawned(id);
        self.ready(id, pid);
        assert_eq!(self.core.state(), State::Running);
        (id, pid)
    }
}

fn spawned_id(actions: &[Action]) -> Option<u64> {
    actions.iter().find_map(|a| match a {
        Action::Spawn { id } => Some(*id),
        _ => None,
    })
}

fn events(actions: &[Action]) -> Vec<(&'static str, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Event { kind, message } => Some((*kind, message.clone())),
            _ => None,
        })
        .collect()
}

fn sent(actions: &[Action]) -> Vec<(u64, EmperorCommand)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { id, command } => Some((*id, *command)),
            _ => None,
        })
        .collect()
}

fn killed(actions: &[Action]) -> Vec<u64> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Kill { id } => Some(*id),
            _ => None,
        })
        .collect()
}

#[test]
fn a_new_file_is_validated_started_and_running_once_ready() {
    let mut h = Harness::new();
    let actions = h.command(Command::Changed { problem: None });
    assert_eq!(actions, [Action::Prepare { problem: None, why: "configuration changed".into() }]);
    let actions = h.prepare(&actions, Ok(PLAN));
    assert_eq!(actions, [Action::Spawn { id: 1 }], "a first start is no reload");
    assert_eq!(h.core.state(), State::Starting);
    let pid = h.spawned(1);
    let actions = h.ready(1, pid);
    assert_eq!(events(&actions), [("ready", format!("ready: pid {pid} serving with 0 worker(s)"))]);
    assert_eq!(h.core.state(), State::Running);
    assert_eq!(h.core.serving().and_then(|p| p.pid), Some(pid));
    assert_eq!(h.core.reloads, 0);
}

#[test]
fn a_touched_file_starts_the_new_version_beside_the_old_which_drains_once_it_is_ready() {
    let mut h = Harness::new();
    let (old, old_pid) = h.running();
    let new = h.changed_ok();
    assert_eq!(h.core.state(), State::Reloading);
    assert_eq!(h.core.reloads, 1);
    let pid = h.spawned(new);
    let actions = h.ready(new, pid);
    assert_eq!(sent(&actions), [(old, EmperorCommand::Stop)]);
    assert!(events(&actions)[0].1.contains(&format!("pid {old_pid} drains and exits")));
    assert_eq!(h.core.state(), State::Running);
    // The old one gets its mercy plus the grace, then is killed (the new one keeps sending heartbeats).
    let alive = VassalMessage::WorkerSpawned { id: 1, pid: 1 };
    h.advance(MERCY + STOP_GRACE - Duration::from_millis(1));
    h.message(new, alive.clone());
    assert!(killed(&h.timers()).is_empty());
    h.advance(Duration::from_millis(1));
    h.message(new, alive);
    let actions = h.timers();
    assert_eq!(killed(&actions), [old]);
    assert!(killed(&h.timers()).is_empty(), "killed once");
    let actions = h.exit(old, "killed by signal 9 (SIGKILL)");
    assert_eq!(
        events(&actions),
        [("exit", format!("pid {old_pid} did not stop in time; killed (killed by signal 9 (SIGKILL))"))]
    );
    assert_eq!(h.core.state(), State::Running);
}

#[test]
fn a_new_version_that_fails_leaves_the_old_one_serving() {
    let mut h = Harness::new();
    let (old, _) = h.running();
    let new = h.changed_ok();
    h.spawned(new);
    let actions = h.exit(new, "exited with code 22 (the app failed to load)");
    assert!(sent(&actions).is_empty() && spawned_id(&actions).is_none(), "{actions:?}");
    assert_eq!(h.core.state(), State::Error);
    assert_eq!(h.core.serving().map(|p| p.id), Some(old));
    let error = h.core.last_error.clone().unwrap_or_default();
    assert!(error.starts_with("exited with code 22") && error.contains("ImportError: x"), "{error}");
    assert!(h.core.next_start().is_none(), "no throttle: the old version serves");
    // A retry (API) starts again.
    let actions = h.command(Command::Retry);
    assert!(matches!(actions.last(), Some(Action::Prepare { .. })));
}

#[test]
fn a_broken_file_is_an_error_and_does_not_stop_the_running_version() {
    let mut h = Harness::new();
    let problem = "app.ini:3: unknown option".to_owned();
    let actions = h.command(Command::Changed { problem: Some(problem.clone()) });
    assert_eq!(actions, [Action::Prepare { problem: Some(problem.clone()), why: "configuration changed".into() }]);
    let actions = h.prepare(&actions, Err(StartError::permanent(problem.clone())));
    assert_eq!(events(&actions), [("error", format!("cannot start: {problem}"))]);
    assert_eq!(h.core.state(), State::Error);
    assert!(h.core.next_start().is_none(), "a broken file waits for a change, not for a timer");

    let mut h = Harness::new();
    h.running();
    let actions = h.command(Command::Changed { problem: Some(problem.clone()) });
    let actions = h.prepare(&actions, Err(StartError::permanent(problem.clone())));
    assert_eq!(
        events(&actions),
        [("error", format!("cannot use the changed file; the running version keeps serving: {problem}"))]
    );
    assert!(sent(&actions).is_empty());
    assert_eq!(h.core.state(), State::Error);
}

#[test]
fn a_deleted_file_stops_the_vassal_and_ends_the_supervisor() {
    let mut h = Harness::new();
    let (id, _) = h.running();
    let actions = h.command(Command::Remove { quick: false });
    assert_eq!(sent(&actions), [(id, EmperorCommand::Stop)]);
    assert!(actions.contains(&Action::ReleaseSockets));
    assert_eq!(h.core.state(), State::Stopping);
    assert!(!h.core.finished());
    // The emperor stopping hard hurries it.
    let actions = h.command(Command::Remove { quick: true });
    assert_eq!(sent(&actions), [(id, EmperorCommand::QuickStop)]);
    h.advance(QUICK_STOP_GRACE);
    assert_eq!(killed(&h.timers()), [id]);
    h.exit(id, "exited with code 0");
    assert!(h.core.finished());
    assert_eq!(h.core.state(), State::Stopped);
    assert!(h.command(Command::Changed { problem: None }).is_empty(), "a removed vassal starts nothing");
}

#[test]
fn a_crash_looping_vassal_is_throttled_with_a_growing_delay() {
    let mut h = Harness::new();
    let mut id = h.changed_ok();
    let mut waits = Vec::new();
    for _ in 0..5 {
        h.spawned(id);
        let actions = h.exit(id, "exited with code 1 (startup error)");
        assert_eq!(events(&actions)[1].0, "throttle");
        assert_eq!(h.core.state(), State::Throttled);
        let at = h.core.next_start().expect("a retry is scheduled");
        waits.push((at - h.now().mono).as_secs());
        h.advance(at - h.now().mono - Duration::from_millis(1));
        assert!(h.timers().is_empty(), "not before the delay");
        h.advance(Duration::from_millis(1));
        let actions = h.timers();
        assert_eq!(actions, [Action::Prepare { problem: None, why: "restart".into() }]);
        id = spawned_id(&h.prepare(&actions, Ok(PLAN))).expect("restarted");
    }
    assert_eq!(waits, [1, 2, 4, 8, 8]);
    assert_eq!(h.core.respawns, 5);
    assert_eq!(h.core.failures(), 5);
    // A changed file is worth trying at once.
    h.spawned(id);
    h.exit(id, "exited with code 1");
    let actions = h.command(Command::Changed { problem: None });
    assert!(matches!(actions.as_slice(), [Action::Prepare { .. }]));
    assert_eq!(h.core.failures(), 0);
}

#[test]
fn a_vassal_that_served_a_while_is_restarted_at_once() {
    let mut h = Harness::new();
    let (id, _) = h.running();
    h.advance(HEALTHY_AFTER);
    let actions = h.exit(id, "killed by signal 9 (SIGKILL)");
    assert!(matches!(actions.last(), Some(Action::Prepare { why, .. }) if why == "restart after an unexpected exit"));
    assert_eq!(h.core.respawns, 1);
    // One that dies soon after it was ready is throttled instead.
    let id = spawned_id(&h.prepare(&actions, Ok(PLAN))).expect("restart");
    let pid = h.spawned(id);
    h.ready(id, pid);
    h.advance(Duration::from_secs(2));
    h.exit(id, "killed by signal 9 (SIGKILL)");
    assert_eq!(h.core.state(), State::Throttled);
}

#[test]
fn a_master_that_stops_sending_heartbeats_is_killed() {
    let mut h = Harness::new();
    let (id, pid) = h.running();
    h.advance(Duration::from_secs(19));
    h.message(id, VassalMessage::Stopping);
    h.advance(Duration::from_secs(19));
    assert!(killed(&h.timers()).is_empty(), "any message is a sign of life");
    h.advance(Duration::from_secs(1));
    let actions = h.timers();
    assert_eq!(killed(&actions), [id]);
    assert_eq!(events(&actions), [("watchdog", "no heartbeat for 20 s; killed".to_owned())]);
    assert!(h.timers().is_empty());
    let actions = h.exit(id, "killed by signal 9 (SIGKILL)");
    assert_eq!(
        events(&actions)[0].1,
        format!("pid {pid} no heartbeat for 20 s; killed (killed by signal 9 (SIGKILL))")
    );
}

#[test]
fn a_candidate_not_ready_in_time_is_killed() {
    let mut h = Harness::new();
    let id = h.changed_ok();
    h.advance(Duration::from_secs(100));
    assert!(killed(&h.timers()).is_empty(), "the timeout runs from the spawn (waiting for a start slot is free)");
    h.spawned(id);
    h.advance(Duration::from_secs(30));
    assert_eq!(killed(&h.timers()), [id]);
    h.exit(id, "killed by signal 9 (SIGKILL)");
    assert!(h.core.last_exit.as_deref().unwrap_or_default().starts_with("not ready within 30 s; killed"));
    assert_eq!(h.core.state(), State::Throttled);
}

#[test]
fn a_newer_change_replaces_a_version_still_starting() {
    let mut h = Harness::new();
    let (serving, _) = h.running();
    let first = h.changed_ok();
    // Not started yet (waiting for a start slot): cancelled.
    let actions = h.command(Command::Changed { problem: None });
    let actions = h.prepare(&actions, Ok(PLAN));
    assert_eq!(killed(&actions), [first]);
    let second = spawned_id(&actions).expect("the newer version");
    assert_ne!(second, first);
    // Started already: told to quick-stop.
    h.spawned(second);
    let actions = h.command(Command::Reload);
    let actions = h.prepare(&actions, Ok(PLAN));
    assert_eq!(sent(&actions), [(second, EmperorCommand::QuickStop)]);
    assert_eq!(h.core.serving().map(|p| p.id), Some(serving));
    assert_eq!(h.core.reloads, 3);
}

#[test]
fn a_vassal_binding_its_own_sockets_reloads_in_place() {
    let mut h = Harness::new();
    let (id, pid) = h.running();
    let actions = h.command(Command::Reload);
    let actions = h.prepare(&actions, Ok(PlanInfo { self_managed: true, mercy: MERCY }));
    assert_eq!(sent(&actions), [(id, EmperorCommand::Reload)]);
    assert!(spawned_id(&actions).is_none());
    assert_eq!(h.core.state(), State::Reloading);
    let actions = h.ready(id, pid);
    assert_eq!(events(&actions), [("ready", format!("reloaded in place: pid {pid} serving with 0 worker(s)"))]);
    assert_eq!(h.core.state(), State::Running);
    // A reload in place that never finishes is a hung master.
    let actions = h.command(Command::Reload);
    h.prepare(&actions, Ok(PlanInfo { self_managed: true, mercy: MERCY }));
    h.advance(Duration::from_secs(15));
    h.message(id, VassalMessage::Stopping);
    h.advance(Duration::from_secs(15));
    let actions = h.timers();
    assert_eq!(killed(&actions), [id]);
    assert_eq!(events(&actions)[0].1, "in-place reload not finished within 30 s; killed");
}

#[test]
fn a_failed_in_place_reload_is_an_error_while_the_old_code_serves() {
    let mut h = Harness::new();
    let (id, _) = h.running();
    let actions = h.command(Command::Reload);
    h.prepare(&actions, Ok(PlanInfo { self_managed: true, mercy: MERCY }));
    let actions = h.message(id, VassalMessage::ReloadFailed { error: "the app did not load; see the log".into() });
    assert_eq!(events(&actions)[0].0, "error");
    assert_eq!(h.core.state(), State::Error);
}

#[test]
fn a_busy_port_is_retried_with_backoff() {
    let mut h = Harness::new();
    let actions = h.command(Command::Changed { problem: None });
    let busy = StartError { message: "127.0.0.1:8000: address in use".into(), transient: true };
    let actions = h.prepare(&actions, Err(busy));
    assert_eq!(events(&actions)[0].0, "throttle");
    assert_eq!(h.core.state(), State::Throttled);
}

#[test]
fn stop_and_start_through_the_api() {
    let mut h = Harness::new();
    let (id, _) = h.running();
    let actions = h.command(Command::Stop);
    assert_eq!(sent(&actions), [(id, EmperorCommand::Stop)]);
    assert!(!actions.contains(&Action::ReleaseSockets), "a stopped vassal keeps its port");
    h.exit(id, "exited with code 0");
    assert_eq!(h.core.state(), State::Stopped);
    assert!(!h.core.finished(), "still listed");
    assert!(h.command(Command::Reload).is_empty());
    let actions = h.command(Command::Start);
    assert!(matches!(actions.last(), Some(Action::Prepare { why, .. }) if why == "start requested"));
}

#[test]
fn chain_reload_is_sent_to_the_serving_master() {
    let mut h = Harness::new();
    let actions = h.command(Command::ChainReload);
    assert!(matches!(actions.as_slice(), [Action::Prepare { .. }]), "nothing serves: a plain (re)start");
    let mut h = Harness::new();
    let (id, _) = h.running();
    let actions = h.command(Command::ChainReload);
    assert_eq!(sent(&actions), [(id, EmperorCommand::ChainReload)]);
    assert_eq!(h.core.reloads, 1);
}

#[test]
fn worker_exits_are_events_unless_a_reload_replaced_them() {
    let mut h = Harness::new();
    let (id, _) = h.running();
    let exited = |cause: ExitCause, how: &str| VassalMessage::WorkerExited { id: 1, pid: 5, cause, how: how.into() };
    assert!(events(&h.message(id, exited(ExitCause::Reload, "exited with code 0"))).is_empty());
    assert_eq!(
        events(&h.message(id, exited(ExitCause::Unplanned, "killed by signal 9 (SIGKILL)"))),
        [("worker", "worker 1 (pid 5) killed by signal 9 (SIGKILL)".to_owned())]
    );
    assert_eq!(
        events(&h.message(id, exited(ExitCause::MaxRequests, "exited with code 0"))),
        [("worker", "worker 1 (pid 5) max-requests (exited with code 0)".to_owned())]
    );
}

#[test]
fn heartbeats_carry_the_traffic_figures() {
    let mut h = Harness::new();
    let (id, pid) = h.running();
    let actions = h.message(
        id,
        VassalMessage::Heartbeat {
            pid,
            requests: 3,
            workers: Vec::new(),
            time: 12.0,
            counters: Some(Box::default()),
            rss_bytes: Some(7),
            respawns: Default::default(),
            daemons: Vec::new(),
        },
    );
    assert!(matches!(actions.as_slice(), [Action::RecordTraffic { time, .. }] if *time == 12.0));
    assert_eq!(h.core.serving().and_then(|p| p.rss_bytes), Some(7));
}
