//! Every rule of the master's core, driven with a fake clock and fake scoreboard readings: no process is
//! forked, no signal sent; each test reads the actions the core asks for.

use super::*;
use crate::control::handover::EXIT_APP_LOAD_FAILED;

fn rules(processes: u32) -> Rules {
    Rules {
        processes,
        lazy_apps: true,
        need_app: true,
        reload_mercy: Duration::from_secs(60),
        harakiri: None,
        max_worker_lifetime: None,
        reload_on_rss: None,
        evil_reload_on_rss: None,
        reload_on_as: None,
        cheaper: None,
        exit_on_reload: false,
        harakiri_graceful: None,
        harakiri_queue_threshold: 0,
        idle: None,
        ksm: 0,
    }
}

/// A core with a clock, a scoreboard and pids of its own.
struct Harness {
    core: Core,
    start: Instant,
    elapsed: Duration,
    views: Vec<WorkerView>,
    next_pid: i32,
    /// Every action performed, oldest first (spawns are answered at once, as the shell does).
    log: Vec<Action>,
}

impl Harness {
    fn new(rules: Rules) -> Self {
        Self::with(rules, Vec::new(), true)
    }

    fn with(rules: Rules, old: Vec<i32>, app_loaded: bool) -> Self {
        let slots = rules.processes as usize * 2;
        let core = Core::new(rules, old.into_iter().map(Pid::from_raw).collect(), app_loaded, BTreeMap::new());
        Harness {
            core,
            start: Instant::now(),
            elapsed: Duration::ZERO,
            views: vec![WorkerView::default(); slots],
            next_pid: 100,
            log: Vec::new(),
        }
    }

    fn mono(&self) -> Instant {
        self.start + self.elapsed
    }

    fn now(&self) -> Now {
        Now { mono: self.mono(), unix_us: 1_000_000_000_000 + self.elapsed.as_micros() as u64 }
    }

    fn advance(&mut self, by: Duration) {
        self.elapsed += by;
    }

    /// Performs the queued actions like the shell: a spawn gets the next pid and a `starting` slot.
    fn drain(&mut self) -> Vec<Action> {
        let mut done = Vec::new();
        loop {
            let actions = self.core.take_actions();
            if actions.is_empty() {
                break;
            }
            for action in actions {
                if let Action::Spawn { slot, .. } = action {
                    self.next_pid += 1;
                    self.views[slot] = WorkerView { status: WorkerStatus::Starting, ..WorkerView::default() };
                    let now = self.mono();
                    self.core.spawned(slot, Ok(Pid::from_raw(self.next_pid)), now);
                }
                done.push(action);
            }
        }
        self.log.extend(done.iter().cloned());
        done
    }

    fn start(&mut self) -> Vec<Action> {
        self.core.start(false);
        self.drain()
    }

    fn tick(&mut self) -> (Option<i32>, Vec<Action>) {
        let views = self.views.clone();
        let code = self.core.tick(self.now(), &views);
        (code, self.drain())
    }

    /// The worker in `slot` has loaded the app and takes requests.
    fn serve(&mut self, slot: usize) {
        self.views[slot].status = WorkerStatus::Idle;
    }

    fn serve_all(&mut self) {
        for (index, _) in self.core.slots().filter(|(_, s)| s.state.pid().is_some()).collect::<Vec<_>>() {
            self.views[index].status = WorkerStatus::Idle;
        }
    }

    fn pid(&self, slot: usize) -> Pid {
        self.core.slots().find(|(i, _)| *i == slot).and_then(|(_, s)| s.state.pid()).expect("a process in the slot")
    }

    fn state(&self, slot: usize) -> Option<SlotState> {
        self.core.slots().find(|(i, _)| *i == slot).map(|(_, s)| s.state)
    }

    fn exit(&mut self, pid: Pid, cause: ExitCause, load_failed: bool) -> Vec<Action> {
        let how = if load_failed { "exited with code 22".to_owned() } else { "exited with code 1".to_owned() };
        let views = self.views.clone();
        let now = self.mono();
        if let Some(slot) = self.core.slot_of(pid) {
            self.views[slot] = WorkerView::default();
        }
        self.core.worker_exited(pid, WorkerExit { how, cause, load_failed, harakiri: 0 }, &views, now);
        self.drain()
    }

    fn crash(&mut self, slot: usize) -> Vec<Action> {
        let pid = self.pid(slot);
        self.exit(pid, ExitCause::Unplanned, false)
    }

    fn ids(&self) -> Vec<(usize, u32)> {
        self.core.slots().map(|(i, s)| (i, s.id)).collect()
    }
}

fn spawns(actions: &[Action]) -> Vec<(usize, u32)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Spawn { slot, id } => Some((*slot, *id)),
            _ => None,
        })
        .collect()
}

fn signals(actions: &[Action], signal: Signal) -> Vec<i32> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Signal { pid, signal: s } if *s == signal => Some(pid.as_raw()),
            _ => None,
        })
        .collect()
}

fn causes(actions: &[Action]) -> Vec<(usize, ExitCause)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SetExitCause { slot, cause } => Some((*slot, *cause)),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------------------
// Start and ready

#[test]
fn start_forks_one_worker_per_process_and_announces_ready_once_all_serve() {
    let mut h = Harness::new(rules(3));
    assert_eq!(spawns(&h.start()), [(0, 1), (1, 2), (2, 3)]);
    h.serve(0);
    h.serve(1);
    let (_, actions) = h.tick();
    assert!(!actions.contains(&Action::AnnounceReady), "worker 3 still loads the app");
    h.serve(2);
    let (_, actions) = h.tick();
    assert!(actions.contains(&Action::AnnounceReady));
    assert!(h.core.announced_ready());
    let (_, actions) = h.tick();
    assert!(actions.is_empty(), "ready is said once: {actions:?}");
    assert_eq!(h.core.history(1).map(|h| h.spawns), Some(1));
}

#[test]
fn without_the_app_no_worker_is_forked() {
    let mut rules = rules(2);
    rules.lazy_apps = false;
    let mut h = Harness::with(rules, Vec::new(), false);
    assert!(spawns(&h.start()).is_empty());
    assert!(spawns(&h.tick().1).is_empty());
}

#[test]
fn a_failed_fork_is_retried_after_a_second() {
    let mut h = Harness::new(rules(1));
    h.core.start(false);
    assert_eq!(h.core.take_actions(), [Action::Spawn { slot: 0, id: 1 }]);
    h.core.spawned(0, Err("EAGAIN".into()), h.mono());
    assert_eq!(h.state(0), Some(SlotState::Respawning { at: h.mono() + FORK_RETRY }));
    h.advance(Duration::from_millis(999));
    assert!(spawns(&h.tick().1).is_empty());
    h.advance(Duration::from_millis(1));
    assert_eq!(spawns(&h.tick().1), [(0, 1)]);
}

// ---------------------------------------------------------------------------------------------------------
// Graceful reload

#[test]
fn preloaded_reload_reexecutes_the_master() {
    let mut rules = rules(2);
    rules.lazy_apps = false;
    let mut h = Harness::new(rules);
    h.start();
    h.core.reload(ReloadKind::Graceful, h.mono());
    assert_eq!(h.drain(), [Action::SystemdReloading, Action::ReExec(ReloadKind::Graceful)]);
    assert_eq!(h.core.pids().len(), 2, "both workers are handed to the next image");
}

#[test]
fn graceful_reload_retires_the_old_generation_only_once_the_new_one_serves() {
    let mut h = Harness::new(rules(2));
    h.start();
    h.serve_all();
    h.tick();
    let old = [h.pid(0), h.pid(1)];
    h.core.reload(ReloadKind::Graceful, h.mono());
    let actions = h.drain();
    assert_eq!(causes(&actions), [(0, ExitCause::Reload), (1, ExitCause::Reload)]);
    assert_eq!(spawns(&actions), [(2, 1), (3, 2)]);
    assert!(matches!(h.state(0), Some(SlotState::Retiring(_))));
    assert!(!h.core.announced_ready());
    h.serve(2);
    let (_, actions) = h.tick();
    assert!(signals(&actions, Signal::SIGTERM).is_empty(), "worker 2 of the new generation still loads");
    h.serve(3);
    let (_, actions) = h.tick();
    assert_eq!(signals(&actions, Signal::SIGTERM), [old[0].as_raw(), old[1].as_raw()]);
    assert!(actions.contains(&Action::AnnounceReady));
    assert!(matches!(h.state(0), Some(SlotState::Draining(_))));
    // The old workers exit: recorded as reload, not respawned.
    let actions = h.exit(old[0], ExitCause::Reload, false);
    assert!(spawns(&actions).is_empty());
    assert_eq!(h.state(0), None);
    assert_eq!(h.core.respawns().get(&ExitCause::Reload), Some(&1));
    assert!(
        matches!(&actions[0], Action::Notify(VassalMessage::WorkerExited { cause: ExitCause::Reload, how, .. }) if how == "exited with code 1")
    );
    h.exit(old[1], ExitCause::Reload, false);
    assert!(spawns(&h.tick().1).is_empty());
    assert_eq!(h.ids(), [(2, 1), (3, 2)]);
}

#[test]
fn a_previous_images_workers_are_retired_once_this_images_serve() {
    let mut rules = rules(1);
    rules.lazy_apps = false;
    let mut h = Harness::with(rules, vec![7, 8], true);
    assert_eq!(spawns(&h.start()), [(0, 1)]);
    assert!(h.core.busy());
    assert!(signals(&h.tick().1, Signal::SIGTERM).is_empty());
    h.serve(0);
    assert_eq!(signals(&h.tick().1, Signal::SIGTERM), [7, 8]);
    assert!(signals(&h.tick().1, Signal::SIGTERM).is_empty(), "told once");
    h.exit(Pid::from_raw(7), ExitCause::Unplanned, false);
    assert_eq!(h.core.pids(), [h.pid(0), Pid::from_raw(8)]);
}

#[test]
fn a_reload_drops_a_worker_waiting_to_respawn_instead_of_doubling_its_id() {
    let mut h = Harness::new(rules(2));
    h.start();
    h.crash(1); // waits 200 ms
    h.core.reload(ReloadKind::Graceful, h.mono());
    let actions = h.drain();
    assert_eq!(spawns(&actions), [(1, 1), (2, 2)]);
    h.advance(Duration::from_secs(1));
    assert!(spawns(&h.tick().1).is_empty());
}

// ---------------------------------------------------------------------------------------------------------
// Chain reload

#[test]
fn chain_reload_replaces_one_worker_at_a_time() {
    let mut h = Harness::new(rules(2));
    h.start();
    h.serve_all();
    h.tick();
    let old = [h.pid(0), h.pid(1)];
    h.core.reload(ReloadKind::Chain, h.mono());
    assert!(spawns(&h.drain()).is_empty(), "the chain starts on the tick");
    assert_eq!(spawns(&h.tick().1), [(2, 1)]);
    // Nothing happens until the replacement serves.
    let (_, actions) = h.tick();
    assert!(actions.is_empty(), "{actions:?}");
    h.serve(2);
    let (_, actions) = h.tick();
    assert_eq!(signals(&actions, Signal::SIGTERM), [old[0].as_raw()]);
    assert_eq!(spawns(&actions), [(3, 2)]);
    h.reload_ignored_during_chain();
    h.serve(3);
    let (_, actions) = h.tick();
    assert_eq!(signals(&actions, Signal::SIGTERM), [old[1].as_raw()]);
    assert!(spawns(&actions).is_empty());
    assert!(actions.contains(&Action::AnnounceReady), "the chain is complete: {actions:?}");
    assert!(matches!(h.state(1), Some(SlotState::Draining(_))));
}

impl Harness {
    fn reload_ignored_during_chain(&mut self) {
        self.core.reload(ReloadKind::Graceful, self.mono());
        assert!(self.drain().is_empty(), "a reload during a chain reload is ignored");
    }
}

#[test]
fn chain_reload_rolls_back_when_a_replacement_dies_before_serving() {
    let mut h = Harness::new(rules(3));
    h.start();
    h.serve_all();
    h.tick();
    let old: Vec<Pid> = (0..3).map(|i| h.pid(i)).collect();
    h.core.reload(ReloadKind::Chain, h.mono());
    h.tick(); // replacement 1 in slot 3
    h.serve(3);
    let (_, actions) = h.tick(); // old worker 1 told to go, replacement 2 in slot 4
    assert_eq!(signals(&actions, Signal::SIGTERM), [old[0].as_raw()]);
    let actions = h.crash(4);
    assert!(
        actions.iter().any(
            |a| matches!(a, Action::Notify(VassalMessage::ReloadFailed { error }) if error.contains("new worker 2"))
        ),
        "{actions:?}"
    );
    // The two old workers not yet replaced serve on, no longer marked as leaving for the reload (a later
    // exit of theirs is theirs); nothing more is forked or signalled.
    assert!(matches!(h.state(1), Some(SlotState::Serving(_))));
    assert!(matches!(h.state(2), Some(SlotState::Serving(_))));
    for slot in [1, 2] {
        assert!(actions.contains(&Action::SetExitCause { slot, cause: ExitCause::Unplanned }), "{actions:?}");
    }
    assert_eq!(h.state(4), None);
    let (_, actions) = h.tick();
    assert!(spawns(&actions).is_empty() && signals(&actions, Signal::SIGTERM).is_empty(), "{actions:?}");
    // A new reload is possible again.
    h.core.reload(ReloadKind::Graceful, h.mono());
    assert!(!spawns(&h.drain()).is_empty());
}

#[test]
fn chain_reload_after_exec_retires_the_previous_images_workers_one_by_one() {
    let mut rules = rules(2);
    rules.lazy_apps = false;
    let mut h = Harness::with(rules, vec![7, 8], true);
    h.core.start(true);
    assert!(h.drain().is_empty());
    assert_eq!(spawns(&h.tick().1), [(0, 1)]);
    h.serve(0);
    let (_, actions) = h.tick();
    assert_eq!(signals(&actions, Signal::SIGTERM), [7]);
    assert_eq!(spawns(&actions), [(1, 2)]);
    h.serve(1);
    assert_eq!(signals(&h.tick().1, Signal::SIGTERM), [8]);
}

// ---------------------------------------------------------------------------------------------------------
// Crash loops and planned exits

#[test]
fn a_crash_loop_backs_off_and_a_worker_that_lived_starts_over() {
    let mut h = Harness::new(rules(1));
    h.start();
    let mut waits = Vec::new();
    for _ in 0..4 {
        h.advance(Duration::from_millis(10));
        h.crash(0);
        let Some(SlotState::Respawning { at }) = h.state(0) else { panic!("waiting") };
        waits.push(at.duration_since(h.mono()).as_millis());
        assert!(spawns(&h.tick().1).is_empty(), "not before the backoff");
        h.advance(at.duration_since(h.mono()));
        assert_eq!(spawns(&h.tick().1), [(0, 1)]);
    }
    assert_eq!(waits, [200, 400, 800, 1600]);
    // This one serves for a while: its crash is respawned at once and the backoff starts over.
    h.advance(WORKER_HEALTHY_AFTER);
    h.crash(0);
    assert_eq!(spawns(&h.tick().1), [(0, 1)]);
    h.advance(Duration::from_millis(10));
    h.crash(0);
    let Some(SlotState::Respawning { at }) = h.state(0) else { panic!("waiting") };
    assert_eq!(at.duration_since(h.mono()), Duration::from_millis(200));
    assert_eq!(h.core.respawns().get(&ExitCause::Unplanned), Some(&6));
    assert_eq!(h.core.history(1).map(|h| (h.spawns, h.last_exit)), Some((6, Some(ExitCause::Unplanned))));
}

#[test]
fn a_planned_exit_is_respawned_at_once_and_is_not_a_crash() {
    for cause in [ExitCause::MaxRequests, ExitCause::Harakiri, ExitCause::ReloadOnRss] {
        let mut h = Harness::new(rules(1));
        h.start();
        h.crash(0);
        h.advance(Duration::from_millis(200));
        h.tick();
        let pid = h.pid(0);
        let actions = h.exit(pid, cause, false);
        assert!(matches!(&actions[0], Action::Notify(VassalMessage::WorkerExited { cause: c, .. }) if *c == cause));
        assert_eq!(spawns(&h.tick().1), [(0, 1)], "{cause:?}");
        assert_eq!(h.core.respawns().get(&cause), Some(&1));
        // The backoff was reset: the next crash waits the base delay again.
        h.advance(Duration::from_millis(10));
        h.crash(0);
        let Some(SlotState::Respawning { at }) = h.state(0) else { panic!("waiting") };
        assert_eq!(at.duration_since(h.mono()), Duration::from_millis(200));
    }
}

#[test]
fn lazy_apps_that_never_load_stop_the_vassal_with_the_load_failed_code() {
    let mut h = Harness::new(rules(2));
    h.start();
    let pid = h.pid(0);
    let actions = h.exit(pid, ExitCause::Unplanned, true);
    assert!(actions.contains(&Action::SystemdStopping));
    assert_eq!(signals(&actions, Signal::SIGKILL), [h.pid(1).as_raw()]);
    let other = h.pid(1);
    h.exit(other, ExitCause::Unplanned, false);
    assert_eq!(h.tick().0, Some(EXIT_APP_LOAD_FAILED));
}

#[test]
fn once_the_app_loaded_a_load_failure_is_a_crash() {
    let mut h = Harness::new(rules(2));
    h.start();
    h.serve(1);
    h.tick();
    let pid = h.pid(0);
    h.exit(pid, ExitCause::Unplanned, true);
    assert!(!h.core.stopping());
    assert!(matches!(h.state(0), Some(SlotState::Respawning { .. })));
}

// ---------------------------------------------------------------------------------------------------------
// Limits and harakiri

#[test]
fn max_worker_lifetime_recycles_a_worker_once() {
    let mut rules = rules(1);
    rules.max_worker_lifetime = Some(Duration::from_secs(30));
    let mut h = Harness::new(rules);
    h.start();
    h.serve(0);
    h.advance(Duration::from_secs(29));
    assert!(signals(&h.tick().1, Signal::SIGTERM).is_empty());
    h.advance(Duration::from_secs(1));
    let (_, actions) = h.tick();
    assert_eq!(causes(&actions), [(0, ExitCause::MaxWorkerLifetime)]);
    assert_eq!(signals(&actions, Signal::SIGTERM), [h.pid(0).as_raw()]);
    assert!(matches!(h.state(0), Some(SlotState::Recycling(_))));
    assert!(h.tick().1.is_empty(), "asked once");
    let pid = h.pid(0);
    h.exit(pid, ExitCause::MaxWorkerLifetime, false);
    assert_eq!(spawns(&h.tick().1), [(0, 1)]);
}

#[test]
fn reload_on_rss_asks_and_evil_reload_on_rss_kills() {
    let mut rules = rules(2);
    rules.reload_on_rss = Some(100);
    rules.evil_reload_on_rss = Some(200);
    let mut h = Harness::new(rules);
    h.start();
    h.serve_all();
    h.views[0].rss_bytes = Some(150 << 20);
    h.views[1].rss_bytes = Some(250 << 20);
    let (_, actions) = h.tick();
    assert_eq!(causes(&actions), [(0, ExitCause::ReloadOnRss), (1, ExitCause::EvilReloadOnRss)]);
    assert_eq!(signals(&actions, Signal::SIGTERM), [h.pid(0).as_raw()]);
    assert_eq!(signals(&actions, Signal::SIGKILL), [h.pid(1).as_raw()]);
    h.views[0].rss_bytes = Some(99 << 20);
    assert!(causes(&h.tick().1).is_empty());
}

#[test]
fn harakiri_dumps_the_stack_then_kills() {
    let mut rules = rules(1);
    rules.harakiri = Some(Duration::from_secs(2));
    let mut h = Harness::new(rules);
    h.start();
    h.serve(0);
    h.tick();
    h.views[0].status = WorkerStatus::Busy;
    h.views[0].request_started_us = h.now().unix_us;
    h.advance(Duration::from_secs(2));
    assert!(h.tick().1.is_empty(), "exactly at the limit is not past it");
    h.advance(Duration::from_millis(1));
    let pid = h.pid(0);
    let (_, actions) = h.tick();
    assert!(matches!(actions.as_slice(), [Action::Harakiri { slot: 0, pid: p, id: 1, .. }] if *p == pid));
    assert!(h.core.busy());
    h.advance(Duration::from_millis(299));
    assert!(h.tick().1.is_empty(), "faulthandler is writing the stack");
    h.advance(Duration::from_millis(1));
    assert_eq!(signals(&h.tick().1, Signal::SIGKILL), [pid.as_raw()]);
    h.exit(pid, ExitCause::Harakiri, false);
    assert_eq!(spawns(&h.tick().1), [(0, 1)]);
}

#[test]
fn reload_on_as_recycles_a_worker_over_its_address_space() {
    let mut rules = rules(2);
    rules.reload_on_as = Some(100);
    let mut h = Harness::new(rules);
    h.start();
    h.serve_all();
    h.views[0].vsz_bytes = Some(100 << 20);
    h.views[1].vsz_bytes = Some(99 << 20);
    let (_, actions) = h.tick();
    assert_eq!(causes(&actions), [(0, ExitCause::ReloadOnAs)]);
    assert_eq!(signals(&actions, Signal::SIGTERM), [h.pid(0).as_raw()]);
    assert!(matches!(h.state(0), Some(SlotState::Recycling(_))));
    assert!(causes(&h.tick().1).is_empty(), "asked once");
    let pid = h.pid(0);
    h.exit(pid, ExitCause::ReloadOnAs, false);
    assert_eq!(spawns(&h.tick().1), [(0, 1)], "a planned recycle: respawned at once");
    assert_eq!(h.core.respawns().get(&ExitCause::ReloadOnAs), Some(&1));
}

#[test]
fn reload_on_as_comes_before_reload_on_rss() {
    let mut rules = rules(1);
    rules.reload_on_as = Some(100);
    rules.reload_on_rss = Some(10);
    let mut h = Harness::new(rules);
    h.start();
    h.serve_all();
    h.views[0].vsz_bytes = Some(200 << 20);
    h.views[0].rss_bytes = Some(20 << 20);
    assert_eq!(causes(&h.tick().1), [(0, ExitCause::ReloadOnAs)]);
}

#[test]
fn harakiri_with_a_graceful_timeout_signals_first_then_kills() {
    let mut rules = rules(1);
    rules.harakiri = Some(Duration::from_secs(2));
    rules.harakiri_graceful = Some((Duration::from_secs(5), Signal::SIGUSR1));
    let mut h = Harness::new(rules);
    h.start();
    h.serve(0);
    h.tick();
    h.views[0].status = WorkerStatus::Busy;
    h.views[0].request_started_us = h.now().unix_us;
    h.advance(Duration::from_millis(2001));
    let pid = h.pid(0);
    assert!(matches!(h.tick().1.as_slice(), [Action::Harakiri { pid: p, .. }] if *p == pid));
    h.advance(HARAKIRI_DUMP_GRACE);
    let (_, actions) = h.tick();
    assert_eq!(signals(&actions, Signal::SIGUSR1), [pid.as_raw()], "the graceful signal after the dump");
    assert!(signals(&actions, Signal::SIGKILL).is_empty());
    h.advance(Duration::from_secs(3));
    assert!(h.tick().1.is_empty(), "sent once, then the graceful timeout runs");
    h.advance(Duration::from_secs(2));
    assert_eq!(signals(&h.tick().1, Signal::SIGKILL), [pid.as_raw()], "killed once the timeout is over");
    h.exit(pid, ExitCause::Harakiri, false);
    assert_eq!(spawns(&h.tick().1), [(0, 1)]);
}

#[test]
fn harakiri_step_waits_for_the_dump_then_kills_or_signals_first() {
    assert_eq!(harakiri_step(Duration::from_millis(100), None, false), HarakiriStep::Wait);
    assert_eq!(harakiri_step(HARAKIRI_DUMP_GRACE, None, false), HarakiriStep::Kill);
    let timeout = Some(Duration::from_secs(5));
    assert_eq!(harakiri_step(Duration::from_millis(100), timeout, false), HarakiriStep::Wait);
    assert_eq!(harakiri_step(HARAKIRI_DUMP_GRACE, timeout, false), HarakiriStep::Graceful);
    assert_eq!(harakiri_step(Duration::from_secs(3), timeout, true), HarakiriStep::Wait);
    assert_eq!(harakiri_step(HARAKIRI_DUMP_GRACE + Duration::from_secs(5), timeout, true), HarakiriStep::Kill);
}

// ---------------------------------------------------------------------------------------------------------
// Stop

#[test]
fn graceful_stop_waits_for_the_workers_then_exits() {
    let mut h = Harness::new(rules(2));
    h.start();
    h.core.begin_stop(StopKind::Graceful, h.mono());
    let actions = h.drain();
    assert_eq!(signals(&actions, Signal::SIGTERM), [h.pid(0).as_raw(), h.pid(1).as_raw()]);
    h.core.begin_stop(StopKind::Graceful, h.mono());
    assert_eq!(h.drain(), [Action::SystemdStopping], "a second graceful stop changes nothing");
    let pids = [h.pid(0), h.pid(1)];
    assert!(spawns(&h.exit(pids[0], ExitCause::Unplanned, false)).is_empty());
    assert_eq!(h.state(0), None, "not respawned while stopping");
    assert!(h.core.respawns().is_empty(), "exits during a stop are not respawns");
    assert_eq!(h.tick().0, None);
    h.exit(pids[1], ExitCause::Unplanned, false);
    assert_eq!(h.tick().0, Some(0));
}

#[test]
fn a_graceful_stop_past_its_mercy_kills_and_exits_after_the_quick_grace() {
    let mut h = Harness::new(rules(1));
    h.start();
    h.core.begin_stop(StopKind::Graceful, h.mono());
    h.drain();
    h.advance(Duration::from_secs(60));
    let (code, actions) = h.tick();
    assert_eq!((code, signals(&actions, Signal::SIGKILL)), (None, vec![h.pid(0).as_raw()]));
    h.advance(QUICK_STOP_GRACE);
    assert_eq!(h.tick().0, Some(0), "a worker that even SIGKILL can't stop does not keep the master");
}

#[test]
fn quick_stop_kills_at_once() {
    let mut h = Harness::with(rules(1), vec![9], true);
    h.start();
    h.core.begin_stop(StopKind::Quick, h.mono());
    let actions = h.drain();
    assert_eq!(signals(&actions, Signal::SIGKILL), [h.pid(0).as_raw(), 9]);
}

#[test]
fn stop_during_a_reload_stops_both_generations_and_no_reload_starts_while_stopping() {
    let mut h = Harness::new(rules(1));
    h.start();
    h.serve_all();
    h.tick();
    h.core.reload(ReloadKind::Chain, h.mono());
    h.drain();
    h.tick(); // the replacement
    h.core.begin_stop(StopKind::Graceful, h.mono());
    let actions = h.drain();
    assert_eq!(signals(&actions, Signal::SIGTERM), [h.pid(0).as_raw(), h.pid(1).as_raw()]);
    h.core.reload(ReloadKind::Graceful, h.mono());
    assert!(h.drain().is_empty(), "no reload while stopping");
    let (pid0, pid1) = (h.pid(0), h.pid(1));
    h.exit(pid1, ExitCause::Unplanned, false);
    h.exit(pid0, ExitCause::Reload, false);
    assert_eq!(h.tick().0, Some(0));
}

// ---------------------------------------------------------------------------------------------------------
// Worker count: cheaper and the FIFO

fn cheaper(processes: u32, min_workers: u32, initial: u32, algo: CheaperAlgo) -> Rules {
    let mut rules = rules(processes);
    rules.cheaper = Some(Cheaper {
        min_workers,
        initial,
        step: 1,
        algo,
        overload: 3,
        idle_cycles: 10,
        rss_limit_soft: None,
        rss_limit_hard: None,
        busyness: liege_config::cheaper::Busyness::default(),
    });
    rules
}

fn cheaper_mut(h: &mut Harness) -> &mut Cheaper {
    h.core.rules.cheaper.as_mut().expect("cheaper")
}

impl Harness {
    /// One master cycle later: a second on, one tick (the first tick only starts the cycle clock).
    fn cycle(&mut self) -> Vec<Action> {
        self.advance(MASTER_CYCLE);
        self.tick().1
    }

    /// Marks every running worker busy (or not).
    fn set_busy(&mut self, busy: bool) {
        for (index, _) in self.core.slots().filter(|(_, s)| s.state.pid().is_some()).collect::<Vec<_>>() {
            self.views[index].status = if busy { WorkerStatus::Busy } else { WorkerStatus::Idle };
        }
    }
}

/// uWSGI's spare: `cheaper-overload` checks with every worker busy fork `cheaper-step` workers; with no
/// overload left and more than one worker free, every `cheaper-overload`-th idle check stops the oldest idle
/// worker, down to `cheaper`; exactly one free worker is the stable state.
#[test]
fn spare_spawns_after_overload_checks_and_cheaps_the_oldest_every_overload_idle_checks() {
    let mut h = Harness::new(cheaper(4, 1, 1, CheaperAlgo::Spare));
    cheaper_mut(&mut h).step = 2;
    assert_eq!(spawns(&h.start()), [(0, 1)], "cheaper-initial workers at start");
    h.serve_all();
    h.tick();
    h.set_busy(true);
    assert!(spawns(&h.cycle()).is_empty());
    assert!(spawns(&h.cycle()).is_empty());
    assert_eq!(spawns(&h.cycle()), [(1, 2), (2, 3)], "three overloaded checks: cheaper-step workers");
    assert_eq!(h.core.target_workers(), 3);
    // One free worker of three: not stable (two busy, one free is the spare) -> stays.
    h.serve_all();
    h.views[0].status = WorkerStatus::Busy;
    h.views[1].status = WorkerStatus::Busy;
    for _ in 0..6 {
        assert!(h.cycle().is_empty(), "one spare worker is the stable state");
    }
    // All idle: every third idle check stops the oldest idle worker.
    h.set_busy(false);
    assert!(h.cycle().is_empty());
    assert!(h.cycle().is_empty());
    let actions = h.cycle();
    assert_eq!(causes(&actions), [(0, ExitCause::Cheaper)], "the oldest: worker 1, spawned first");
    assert_eq!(signals(&actions, Signal::SIGTERM), [h.pid(0).as_raw()]);
    assert_eq!(h.core.target_workers(), 2);
    let pid = h.pid(0);
    h.exit(pid, ExitCause::Cheaper, false);
    assert!(h.cycle().is_empty() && h.cycle().is_empty());
    assert_eq!(causes(&h.cycle()), [(1, ExitCause::Cheaper)]);
    for _ in 0..9 {
        assert!(causes(&h.cycle()).is_empty(), "never below cheaper = 1");
    }
    assert_eq!(h.core.respawns().get(&ExitCause::Cheaper), Some(&1), "counted as cheaper, not as a reload");
}

/// uWSGI's spare2: keeps `cheaper` workers idle.
#[test]
fn spare2_keeps_cheaper_workers_idle() {
    let mut h = Harness::new(cheaper(5, 2, 2, CheaperAlgo::Spare2));
    cheaper_mut(&mut h).step = 3;
    cheaper_mut(&mut h).idle_cycles = 2;
    h.start();
    h.serve_all();
    h.tick();
    assert!(h.cycle().is_empty(), "two idle: as wanted");
    h.set_busy(true);
    assert_eq!(spawns(&h.cycle()), [(2, 3), (3, 4)], "none idle: two more (the difference, under step)");
    h.serve_all();
    h.views[0].status = WorkerStatus::Busy;
    assert!(h.cycle().is_empty(), "three idle: one idle check");
    assert!(causes(&h.cycle()).iter().any(|c| c.1 == ExitCause::Cheaper), "cheaper-idle checks: one stops");
    assert!(h.cycle().is_empty(), "two idle now");
}

/// uWSGI's backlog algorithm: spawns while the listen queue is longer than cheaper-overload, stops one per
/// check while it is shorter.
#[test]
fn backlog_follows_the_listen_queue() {
    let mut h = Harness::new(cheaper(3, 1, 1, CheaperAlgo::Backlog));
    h.start();
    h.serve_all();
    h.tick();
    h.core.set_listen_queue(4);
    assert_eq!(spawns(&h.cycle()), [(1, 2)]);
    assert_eq!(spawns(&h.cycle()), [(2, 3)]);
    assert!(h.cycle().is_empty(), "at processes");
    h.serve_all();
    h.core.set_listen_queue(3);
    assert!(h.cycle().is_empty(), "equal to cheaper-overload: hold");
    h.core.set_listen_queue(0);
    assert_eq!(causes(&h.cycle()).len(), 1);
    assert_eq!(causes(&h.cycle()).len(), 1);
    assert!(h.cycle().is_empty(), "down to cheaper");
}

/// `manual`: only the master FIFO changes the count, at the next check, stopping the oldest idle worker.
#[test]
fn manual_follows_the_fifo_only() {
    let mut h = Harness::new(cheaper(3, 1, 2, CheaperAlgo::Manual));
    h.start();
    h.serve_all();
    h.tick();
    h.set_busy(true);
    for _ in 0..5 {
        assert!(h.cycle().is_empty(), "manual never acts alone");
    }
    h.core.change_worker_count(true);
    assert!(h.drain().is_empty(), "applied at the next check");
    assert_eq!(spawns(&h.cycle()), [(2, 3)]);
    h.serve_all();
    h.views[0].status = WorkerStatus::Busy;
    h.core.change_worker_count(false);
    assert_eq!(causes(&h.cycle()), [(1, ExitCause::Cheaper)], "the oldest idle one: worker 2 (1 is busy)");
}

/// A `-` while every worker is busy waits for the next check (uWSGI returns it to the FIFO delta).
#[test]
fn a_stop_with_every_worker_busy_waits_for_an_idle_one() {
    let mut h = Harness::new(cheaper(3, 1, 2, CheaperAlgo::Manual));
    h.start();
    h.serve_all();
    h.tick();
    h.set_busy(true);
    h.core.change_worker_count(false);
    assert!(h.cycle().is_empty());
    h.views[1].status = WorkerStatus::Idle;
    assert_eq!(causes(&h.cycle()), [(1, ExitCause::Cheaper)]);
}

/// cheaper-rss-limit-soft forbids spawning; -hard stops the oldest idle worker each check while the total is
/// over it, even below `cheaper` (but never the last one).
#[test]
fn rss_limits_stop_spawning_and_cheap_the_oldest() {
    let mut h = Harness::new(cheaper(4, 2, 3, CheaperAlgo::Spare));
    cheaper_mut(&mut h).overload = 1;
    cheaper_mut(&mut h).rss_limit_soft = Some(300);
    cheaper_mut(&mut h).rss_limit_hard = Some(400);
    assert!(h.core.rules.watches_rss());
    h.start();
    h.serve_all();
    h.tick();
    h.set_busy(true);
    for index in 0..3 {
        h.views[index].rss_bytes = Some(100);
    }
    assert!(spawns(&h.cycle()).is_empty(), "at the soft limit (300): no spawn however busy");
    h.views[2].rss_bytes = Some(50);
    assert_eq!(spawns(&h.cycle()), [(3, 4)], "under it again");
    h.serve_all();
    h.views[3].rss_bytes = Some(200);
    let actions = h.cycle();
    assert_eq!(causes(&actions), [(0, ExitCause::Cheaper)], "over the hard limit: the oldest idle one");
    h.views[0].rss_bytes = None;
    h.views[1].rss_bytes = Some(300);
    assert_eq!(causes(&h.cycle()), [(1, ExitCause::Cheaper)], "still over: the next oldest, below cheaper = 2");
    h.views[1].rss_bytes = None;
    h.views[2].rss_bytes = Some(500);
    h.views[3].rss_bytes = None;
    let actions = h.cycle();
    assert_eq!(causes(&actions), [(2, ExitCause::Cheaper)]);
    h.views[2].rss_bytes = None;
    h.views[3].rss_bytes = Some(500);
    assert!(causes(&h.cycle()).is_empty(), "never the last worker");
}

/// The busyness plugin: each worker's share of the `cheaper-overload` period spent in requests (its
/// running_time delta), averaged; above max a spawn, below min a stop once the timer (overload × multiplier)
/// ran out; a worker seen busy without finishing a request counts 100%.
#[test]
fn busyness_spawns_above_max_and_cheaps_below_min_after_the_multiplier() {
    let mut h = Harness::new(cheaper(4, 1, 2, CheaperAlgo::Busyness));
    {
        let c = cheaper_mut(&mut h);
        c.overload = 2;
        c.busyness.multiplier = 3;
    }
    h.start();
    h.serve_all();
    h.tick();
    assert!(h.cycle().is_empty(), "the first check starts the timers");
    // Period 1: worker 1 ran requests for 1.8 s of 2 (90%), worker 2 for 0.4 s (20%): 55% > 50%.
    h.views[0].running_time_us = 1_800_000;
    h.views[1].running_time_us = 400_000;
    assert!(h.cycle().is_empty());
    assert_eq!(spawns(&h.cycle()), [(2, 3)], "55% average over max 50");
    h.serve_all();
    // A long request: busy at every check, no request finished -> 100%.
    h.views[0].status = WorkerStatus::Busy;
    h.views[1].status = WorkerStatus::Busy;
    assert!(h.cycle().is_empty());
    assert_eq!(spawns(&h.cycle()), [(3, 4)], "two of three 100% busy: 66%");
    // Idle from now on: nothing finishes, nobody busy. The spawn set the timer to 2 s × 3 = 6 s.
    h.serve_all();
    let mut stopped = Vec::new();
    for _ in 0..8 {
        stopped.extend(causes(&h.cycle()));
    }
    assert_eq!(stopped, [(0, ExitCause::Cheaper)], "one stop, the oldest, after the multiplier's periods");
}

/// A worker needed again within multiplier periods of a stop raises the multiplier by the penalty.
#[test]
fn busyness_penalizes_a_respawn_soon_after_a_cheap() {
    let mut h = Harness::new(cheaper(3, 1, 2, CheaperAlgo::Busyness));
    {
        let c = cheaper_mut(&mut h);
        c.overload = 1;
        c.busyness.multiplier = 2;
    }
    h.start();
    h.serve_all();
    h.tick();
    h.cycle();
    assert!(h.cycle().is_empty(), "idle, but the timer (1 s × 2) runs");
    assert_eq!(causes(&h.cycle()).len(), 1, "idle for the multiplier's periods: one stopped");
    assert_eq!(h.core.cheaper_state.busyness.cheap_multi, 2);
    h.views[1].running_time_us += 900_000;
    assert_eq!(spawns(&h.cycle()).len(), 1, "90%: spawn");
    assert_eq!(h.core.cheaper_state.busyness.cheap_multi, 4, "+ penalty 2: the stop was too early");
}

/// The listen queue over cheaper-busyness-backlog-alert spawns emergency workers at any check; one
/// non-empty for -backlog-nonzero seconds does too.
#[test]
fn busyness_spawns_emergency_workers_for_the_listen_queue() {
    let mut h = Harness::new(cheaper(5, 1, 1, CheaperAlgo::Busyness));
    {
        let c = cheaper_mut(&mut h);
        c.overload = 10;
        c.busyness.backlog_alert = 4;
        c.busyness.backlog_step = 2;
        c.busyness.backlog_nonzero = Duration::from_secs(3);
    }
    h.start();
    h.serve_all();
    h.tick();
    h.cycle();
    h.core.set_listen_queue(5);
    assert_eq!(spawns(&h.cycle()), [(1, 2), (2, 3)], "queue 5 > alert 4: backlog-step emergency workers");
    assert_eq!(h.core.cheaper_state.busyness.emergency_workers, 2);
    h.serve_all();
    h.core.set_listen_queue(1);
    assert!(h.cycle().is_empty(), "the queue starts to fill");
    assert!(h.cycle().is_empty());
    assert!(h.cycle().is_empty());
    assert_eq!(spawns(&h.cycle()), [(3, 4), (4, 5)], "non-empty for 3 s");
    h.core.set_listen_queue(0);
    assert!(h.cycle().is_empty());
}

/// harakiri-queue-threshold, as uWSGI: a request past harakiri is left alone while the listen queue is
/// shorter than the threshold, and killed as soon as it is not.
#[test]
fn harakiri_waits_for_the_listen_queue_threshold() {
    let mut rules = rules(1);
    rules.harakiri = Some(Duration::from_secs(2));
    rules.harakiri_queue_threshold = 3;
    let mut h = Harness::new(rules);
    h.start();
    h.serve(0);
    h.tick();
    h.views[0].status = WorkerStatus::Busy;
    h.views[0].request_started_us = h.now().unix_us;
    h.core.set_listen_queue(2);
    h.advance(Duration::from_secs(5));
    assert!(h.tick().1.is_empty(), "2 < 3 waiting: skipped");
    h.advance(Duration::from_secs(5));
    assert!(h.tick().1.is_empty(), "still skipped");
    h.core.set_listen_queue(3);
    let (_, actions) = h.tick();
    assert!(matches!(actions.as_slice(), [Action::Harakiri { slot: 0, id: 1, .. }]), "{actions:?}");
}

/// `idle`: no request and no busy worker for more than `idle` seconds stops every worker (SIGINT, SIGKILL 3 s
/// later); a waiting connection brings `processes` (with cheaper: `cheaper`) workers back.
#[test]
fn idle_mode_stops_every_worker_until_a_connection_arrives() {
    let mut rules = rules(2);
    rules.idle = Some(Duration::from_secs(3));
    let mut h = Harness::new(rules);
    h.start();
    h.serve_all();
    h.tick();
    h.cycle(); // the clock starts
    h.views[0].status = WorkerStatus::Busy;
    for _ in 0..5 {
        assert!(h.cycle().is_empty(), "a busy worker is not idle");
    }
    h.serve_all();
    h.core.set_total_requests(1);
    for _ in 0..4 {
        assert!(h.cycle().is_empty(), "a request came: the clock starts again (and 3 s are not more than 3)");
    }
    let actions = h.cycle();
    assert_eq!(signals(&actions, Signal::SIGINT), [h.pid(0).as_raw(), h.pid(1).as_raw()]);
    assert_eq!(causes(&actions), [(0, ExitCause::Cheaper), (1, ExitCause::Cheaper)]);
    assert!(h.core.cheap());
    let (pid0, pid1) = (h.pid(0), h.pid(1));
    h.exit(pid0, ExitCause::Cheaper, false);
    h.advance(IDLE_STOP_GRACE);
    assert_eq!(signals(&h.tick().1, Signal::SIGKILL), [pid1.as_raw()], "still there after 3 s");
    h.exit(pid1, ExitCause::Cheaper, false);
    for _ in 0..5 {
        assert!(h.cycle().is_empty(), "nothing respawns in cheap mode");
    }
    h.core.connection_waiting();
    assert_eq!(spawns(&h.drain()), [(0, 1), (1, 2)]);
    assert!(!h.core.cheap());
}

#[test]
fn a_reload_in_cheap_mode_starts_the_workers_and_ends_it() {
    let mut rules = rules(2);
    rules.idle = Some(Duration::from_secs(1));
    let mut h = Harness::new(rules);
    h.start();
    h.serve_all();
    h.tick();
    for _ in 0..3 {
        h.cycle();
    }
    assert!(h.core.cheap());
    for index in 0..2 {
        let pid = h.pid(index);
        h.exit(pid, ExitCause::Cheaper, false);
    }
    h.core.reload(ReloadKind::Graceful, h.mono());
    assert_eq!(spawns(&h.drain()).len(), 2, "lazy-apps: a new generation");
    assert!(!h.core.cheap());
}

#[test]
fn idle_mode_with_cheaper_wakes_up_with_the_cheaper_minimum() {
    let mut rules = cheaper(4, 1, 3, CheaperAlgo::Spare);
    rules.idle = Some(Duration::from_secs(1));
    let mut h = Harness::new(rules);
    h.start();
    h.serve_all();
    h.tick();
    h.views[0].status = WorkerStatus::Busy;
    h.views[1].status = WorkerStatus::Busy;
    h.cycle();
    h.serve_all();
    h.cycle();
    h.cycle();
    let actions = h.cycle();
    assert_eq!(signals(&actions, Signal::SIGINT).len(), 3, "{actions:?}");
    for index in 0..3 {
        let pid = h.pid(index);
        h.exit(pid, ExitCause::Cheaper, false);
    }
    h.core.connection_waiting();
    assert_eq!(spawns(&h.drain()), [(0, 1)]);
}

/// `ksm = N`: the master marks its mappings mergeable every N master cycles.
#[test]
fn ksm_runs_in_the_master_every_n_cycles() {
    let mut rules = rules(1);
    rules.ksm = 2;
    let mut h = Harness::new(rules);
    h.start();
    h.tick();
    let ksm = |actions: &[Action]| actions.iter().filter(|a| **a == Action::KsmMerge).count();
    let counts: Vec<usize> = (0..6).map(|_| ksm(&h.cycle())).collect();
    assert_eq!(counts, [0, 1, 0, 1, 0, 1]);
}

#[test]
fn the_fifo_changes_the_worker_count_within_bounds() {
    let mut h = Harness::new(rules(2));
    h.start();
    h.core.change_worker_count(true);
    assert_eq!(h.core.target_workers(), 2, "at most processes");
    h.core.change_worker_count(false);
    assert_eq!(h.core.target_workers(), 1);
    let (_, actions) = h.tick();
    assert_eq!(causes(&actions), [(1, ExitCause::Reload)]);
    assert_eq!(signals(&actions, Signal::SIGTERM), [h.pid(1).as_raw()]);
    h.core.change_worker_count(false);
    assert_eq!(h.core.target_workers(), 1, "at least one");
    let pid = h.pid(1);
    h.exit(pid, ExitCause::Reload, false);
    h.core.change_worker_count(true);
    assert_eq!(spawns(&h.tick().1), [(1, 2)]);
}

#[test]
fn fifo_w_kills_every_worker_and_they_come_back_as_crashes() {
    let mut h = Harness::with(rules(2), vec![9], true);
    h.start();
    h.core.kill_workers();
    let actions = h.drain();
    assert_eq!(signals(&actions, Signal::SIGKILL), [h.pid(0).as_raw(), h.pid(1).as_raw()], "not the old image's");
}

// ---------------------------------------------------------------------------------------------------------
// exit-on-reload and signal hooks

#[test]
fn exit_on_reload_turns_a_reload_into_a_graceful_stop_with_exit_code_0() {
    let mut rules = rules(1);
    rules.exit_on_reload = true;
    let mut h = Harness::new(rules);
    h.start();
    h.serve_all();
    h.tick();
    let pid = h.pid(0);
    h.core.reload(ReloadKind::Graceful, h.mono());
    let actions = h.drain();
    assert!(!actions.contains(&Action::SystemdReloading), "no reload starts");
    assert!(spawns(&actions).is_empty());
    assert_eq!(signals(&actions, Signal::SIGTERM), [pid.as_raw()]);
    assert!(h.core.stopping());
    h.exit(pid, ExitCause::Unplanned, false);
    assert_eq!(h.tick().0, Some(0));
}

#[test]
fn exit_on_reload_applies_to_a_chain_reload_too() {
    let mut rules = rules(1);
    rules.exit_on_reload = true;
    rules.lazy_apps = false;
    let mut h = Harness::new(rules);
    h.start();
    h.core.reload(ReloadKind::Chain, h.mono());
    let actions = h.drain();
    assert!(!actions.iter().any(|a| matches!(a, Action::ReExec(_))), "no re-exec");
    assert!(h.core.stopping());
}

#[test]
fn a_brutal_reload_kills_every_process_then_reloads() {
    let mut h = Harness::with(rules(1), vec![9], true);
    h.start();
    h.serve_all();
    h.tick();
    let pid = h.pid(0);
    h.core.brutal_reload(h.mono());
    let actions = h.drain();
    assert_eq!(signals(&actions, Signal::SIGKILL), [pid.as_raw(), 9]);
    assert!(actions.contains(&Action::SystemdReloading));
    assert_eq!(spawns(&actions), [(1, 1)], "lazy-apps: a new generation is forked");
}

// ---------------------------------------------------------------------------------------------------------
// --- Python plugin options (py) ---
// SIGHUP from a worker (py-autoreload, uwsgi.reload()): one change, one reload.

#[test]
fn sighup_from_outside_or_from_a_serving_worker_reloads() {
    let mut h = Harness::new(rules(2));
    h.start();
    h.serve_all();
    h.tick();
    h.core.reload_asked_by(Pid::from_raw(1), h.mono());
    assert_eq!(spawns(&h.drain()), [(2, 1), (3, 2)], "kill -HUP from outside: a reload");
    h.serve_all();
    h.tick();
    for slot in [0, 1] {
        let old = h.pid(slot);
        h.exit(old, ExitCause::Reload, false);
    }
    let current = h.pid(2);
    h.core.reload_asked_by(current, h.mono());
    assert_eq!(spawns(&h.drain()).len(), 2, "a worker of the serving generation: a new reload");
}

#[test]
fn sighups_from_workers_a_reload_is_replacing_are_not_more_reloads() {
    let mut h = Harness::new(rules(2));
    h.start();
    h.serve_all();
    h.tick();
    let (first, second) = (h.pid(0), h.pid(1));
    // Worker 1 noticed the edit: a reload.
    h.core.reload_asked_by(first, h.mono());
    assert_eq!(spawns(&h.drain()), [(2, 1), (3, 2)]);
    // Worker 2 notices the same edit a moment later: it is being replaced already.
    h.core.reload_asked_by(second, h.mono());
    assert!(h.drain().is_empty());
    // Still so while it drains after the new generation took over.
    h.serve_all();
    h.tick();
    h.core.reload_asked_by(second, h.mono());
    assert!(spawns(&h.drain()).is_empty());
}

#[test]
fn a_preloaded_image_ignores_the_previous_images_workers_unless_its_reload_failed() {
    let mut preloaded = rules(1);
    preloaded.lazy_apps = false;
    // The new image loaded the app: the old worker's request is the reload that made this image.
    let mut h = Harness::with(preloaded.clone(), vec![50], true);
    h.start();
    h.core.reload_asked_by(Pid::from_raw(50), h.mono());
    assert!(h.drain().is_empty());
    // The new image could not import the app: the old worker still serves, and it saw the fix.
    let mut h = Harness::with(preloaded, vec![50], false);
    h.start();
    h.core.reload_asked_by(Pid::from_raw(50), h.mono());
    assert_eq!(h.drain(), [Action::SystemdReloading, Action::ReExec(ReloadKind::Graceful)]);
}
// --- end Python plugin options ---
