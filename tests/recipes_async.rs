//! The async recipes, run as processes with short timings: the event loop,
//! the state machine (its path for fixed seeds), the concurrent tasks, and
//! the futures with callbacks.

mod common;

use std::time::Instant;

use common::spawn_example;

/// Runs an example to its end; returns its stdout, asserting it succeeded.
async fn run(name: &str, args: &[&str]) -> String {
    let (status, out) = spawn_example(name, args, &[]).output().await;
    assert!(status.success(), "{name} {args:?}: {status}: {out}");
    out
}

#[tokio::test]
async fn the_event_loop_cycles_a_b_c_until_the_end_time() {
    let started = Instant::now();
    let args = [
        "--end",
        "1",
        "--delay",
        "0.05",
        "--a",
        "0-0.05",
        "--b",
        "0.02-0.06",
        "--c",
        "0.05-0.1",
        "--seed",
        "3",
    ];
    let out = run("event_loop", &args).await;
    let elapsed = started.elapsed().as_secs_f64();
    let lines: Vec<&str> = out.lines().collect();
    let (last, calls) = lines.split_last().unwrap();
    // Each call takes at least the delay, so at most 1 s / 0.05 s + 1 fit;
    // each takes at most 0.1 s of work plus the delay, so some 6 do (4 on a
    // busy machine, whose timers fire late).
    assert!((4..=21).contains(&calls.len()), "{out}");
    for (i, call) in calls.iter().enumerate() {
        assert_eq!(*call, ["task_A called", "task_B called", "task_C called"][i % 3], "{out}");
    }
    // It stops once the next call would start past the end: not before
    // 1 s - delay, and not long after the end.
    let stopped: f64 = last
        .strip_prefix("Loop stopped after ")
        .and_then(|s| s.strip_suffix(" seconds"))
        .unwrap_or_else(|| panic!("{last:?}"))
        .parse()
        .unwrap();
    assert!((0.9..=1.5).contains(&stopped), "stopped after {stopped} s");
    assert!(elapsed >= 0.95, "the run took {elapsed} s");
}

/// SplitMix64, written again here from its definition, to derive what the
/// state machine must print for a seed.
struct SplitMix64(u64);

impl SplitMix64 {
    fn bit(&mut self) -> u8 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 63) as u8
    }
}

/// What the state machine prints for `seed`, from the transitions in
/// SEED-RECIPES.md: S0: 0→S2, 1→S1. S1: 0→S3, 1→S2. S2: 0→S1, 1→S3.
/// S3: 0→S1, 1→S4.
fn expected_state_machine(seed: u64) -> String {
    let name = |s: u8| match s {
        0 => "Start State".to_owned(),
        4 => "End State".to_owned(),
        n => format!("State {n}"),
    };
    let next = |s: u8, v: u8| match (s, v) {
        (0, 0) | (1, 1) => 2,
        (0, 1) | (2, 0) | (3, 0) => 1,
        (1, 0) | (2, 1) => 3,
        (3, 1) => 4,
        _ => unreachable!(),
    };
    let mut rng = SplitMix64(seed);
    let (mut out, mut path) = ("Start State called\n".to_owned(), String::new());
    let mut state = 0;
    while state != 4 {
        let value = rng.bit();
        let to = next(state, value);
        if state != 0 {
            out.push_str("...evaluating...\n");
        }
        path.push_str(&format!("{} calling {} with transition value = {value}\n", name(state), name(to)));
        state = to;
    }
    out.push_str("...stop computation...\nResume of the Transition:\n");
    out + &path
}

#[tokio::test]
async fn the_state_machine_takes_the_path_its_seed_implies() {
    let mut paths = std::collections::BTreeSet::new();
    for seed in ["1", "7", "42", "2024"] {
        let out = run("state_machine", &["--seed", seed, "--step", "0"]).await;
        assert_eq!(out, expected_state_machine(seed.parse().unwrap()), "seed {seed}");
        paths.insert(out);
    }
    assert!(paths.len() > 1, "every seed took the same path");

    // Seed 129 takes the path of the example in SEED-RECIPES.md.
    let out = run("state_machine", &["--seed", "129", "--step", "0"]).await;
    let path = out.split_once("Resume of the Transition:\n").unwrap().1;
    assert_eq!(
        path,
        "Start State calling State 1 with transition value = 1\n\
         State 1 calling State 2 with transition value = 1\n\
         State 2 calling State 1 with transition value = 0\n\
         State 1 calling State 3 with transition value = 0\n\
         State 3 calling End State with transition value = 1\n"
    );
    assert_eq!(out.matches("...evaluating...").count(), 4, "{out}");
}

#[tokio::test]
async fn the_concurrent_tasks_interleave_and_get_their_results() {
    let out = run("concurrent_tasks", &["--step", "0.02"]).await;
    let lines: Vec<&str> = out.lines().collect();
    for result in ["factorial(10) = 3628800", "fibonacci(10) = 55", "binomial_coefficient(20, 10) = 184756"] {
        assert_eq!(lines.iter().filter(|l| **l == result).count(), 1, "{result} in {out}");
    }
    let progress = |task: &str| -> Vec<usize> {
        let prefix = format!("Task: Compute {task}(");
        lines.iter().filter_map(|l| l.strip_prefix(&prefix)?.strip_suffix(')')?.parse().ok()).collect()
    };
    assert_eq!(progress("factorial"), (2..=10).collect::<Vec<_>>());
    assert_eq!(progress("fibonacci"), (0..=9).collect::<Vec<_>>());
    assert_eq!(progress("binomial_coefficient"), (1..=10).collect::<Vec<_>>());
    // Interleaved: run one after the other, the progress lines would change
    // task twice; taking turns, they change at nearly every line.
    let tasks: Vec<&str> =
        lines.iter().filter_map(|l| l.strip_prefix("Task: Compute ")?.split('(').next()).collect();
    let switches = tasks.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(switches >= 15, "the tasks did not take turns ({switches} switches):\n{out}");
    // Each result comes after its own last step.
    let position = |prefix: &str| lines.iter().rposition(|l| l.starts_with(prefix)).unwrap();
    assert!(position("factorial(10) =") > position("Task: Compute factorial(10)"));
}

#[tokio::test]
async fn the_futures_call_back_with_the_sum_and_the_exact_factorial() {
    let first = |n: &str| format!("First coroutine (sum of N integers) result = {n}");
    let second = |n: &str| format!("Second coroutine (factorial) result = {n}");

    let out = run("future_callbacks", &["5", "5", "--sum-step", "0", "--factorial-step", "0"]).await;
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, [first("15"), second("120")]);

    let fifty = "30414093201713378043612608166064768844377641568960512000000000000";
    let out = run("future_callbacks", &["50", "50", "--sum-step", "0", "--factorial-step", "0"]).await;
    assert!(out.lines().any(|l| l == first("1275")), "{out}");
    assert!(out.lines().any(|l| l == second(fifty)), "{out}");

    // 30! fits in a u128: compare with the exact product; and 1 + … + 100000.
    let thirty: u128 = (1..=30u128).product();
    let out = run("future_callbacks", &["100000", "30", "--sum-step", "0", "--factorial-step", "0"]).await;
    assert!(out.lines().any(|l| l == first("5000050000")), "{out}");
    assert!(out.lines().any(|l| l == second(&thirty.to_string())), "{out}");

    // The callbacks run as each future completes: the faster one first.
    let out = run("future_callbacks", &["3", "3", "--sum-step", "0", "--factorial-step", "0.2"]).await;
    assert_eq!(out, format!("{}\n{}\n", first("6"), second("6")));
    let out = run("future_callbacks", &["3", "3", "--sum-step", "0.2", "--factorial-step", "0"]).await;
    assert_eq!(out, format!("{}\n{}\n", second("6"), first("6")));
}
