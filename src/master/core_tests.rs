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
        let now = self.mono();
        self.core.start(false, now);
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
    h.core.start(false, h.mono());
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
    // The two old workers not yet replaced serve on; nothing more is forked or signalled.
    assert!(matches!(h.state(1), Some(SlotState::Serving(_))));
    assert!(matches!(h.state(2), Some(SlotState::Serving(_))));
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
    h.core.start(true, h.mono());
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

#[test]
fn cheaper_adds_workers_when_all_are_busy_and_retires_an_idle_one() {
    let mut rules = rules(4);
    rules.cheaper = Some(liege_config::Cheaper {
        min_workers: 1,
        initial: 2,
        step: 2,
        algo: "spare".into(),
        idle: Duration::from_secs(10),
    });
    let mut h = Harness::new(rules);
    assert_eq!(spawns(&h.start()), [(0, 1), (1, 2)]);
    h.serve_all();
    h.views[0].status = WorkerStatus::Busy;
    h.views[1].status = WorkerStatus::Busy;
    let (_, actions) = h.tick();
    assert_eq!(h.core.target_workers(), 4);
    assert_eq!(spawns(&actions), [(2, 3)], "one fork per tick");
    assert_eq!(spawns(&h.tick().1), [(3, 4)]);
    assert_eq!(h.core.target_workers(), 4, "capped at processes");
    // All idle now: after `idle` seconds one worker goes (the highest id), then the clocks start over.
    h.serve_all();
    h.advance(Duration::from_secs(10));
    let (_, actions) = h.tick();
    assert_eq!(h.core.target_workers(), 3);
    assert_eq!(causes(&actions), [(3, ExitCause::Cheaper)]);
    assert_eq!(signals(&actions, Signal::SIGTERM), [h.pid(3).as_raw()]);
    assert!(h.tick().1.is_empty(), "one idle period retires one worker");
    // A worker that served a request is not idle, but the others are: the next idle period retires another.
    h.views[0].requests = 5;
    h.advance(Duration::from_secs(10));
    h.tick();
    assert_eq!(h.core.target_workers(), 2);
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
