//! Named cases that share one started stack.
//!
//! Starting MongoDB, PostgreSQL and zero-cache costs seconds, and nextest runs every test
//! function in a process of its own, so a scenario that needs real services is one test function
//! that starts them once and then runs its cases in order. [`Cases`] gives each case a name, its
//! time and its own failure (a returned error or a panic), goes on with the next case, and fails
//! the test at the end naming every case that failed: a failure is placed by its case, not by a
//! line number inside a 300-line function.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use futures::FutureExt;

/// The cases run so far, and which of them failed.
#[derive(Default)]
pub struct Cases {
    scenario: String,
    failed: Vec<String>,
    passed: usize,
}

impl Cases {
    /// Cases of one scenario (the name goes into every line printed).
    pub fn new(scenario: &str) -> Cases {
        Cases {
            scenario: scenario.to_string(),
            ..Default::default()
        }
    }

    /// Runs one case to its end; its failure is recorded, not propagated.
    pub async fn run<F>(&mut self, name: &str, case: F)
    where
        F: Future<Output = anyhow::Result<()>>,
    {
        let started = Instant::now();
        let outcome = AssertUnwindSafe(case).catch_unwind().await;
        let secs = started.elapsed().as_secs_f64();
        let failure = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("{e:#}")),
            Err(panic) => Some(panic_message(&*panic)),
        };
        match failure {
            None => {
                self.passed += 1;
                println!("[{}] case {name} ... ok ({secs:.1}s)", self.scenario);
            }
            Some(why) => {
                println!(
                    "[{}] case {name} ... FAILED ({secs:.1}s): {why}",
                    self.scenario
                );
                self.failed.push(format!("{name}: {why}"));
            }
        }
    }

    /// Ok when every case passed; otherwise an error listing the failed cases.
    pub fn finish(self) -> anyhow::Result<()> {
        if self.failed.is_empty() {
            println!("[{}] {} cases passed", self.scenario, self.passed);
            return Ok(());
        }
        anyhow::bail!(
            "[{}] {} of {} cases failed:\n- {}",
            self.scenario,
            self.failed.len(),
            self.failed.len() + self.passed,
            self.failed.join("\n- ")
        )
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_case_runs_and_each_failure_is_named() {
        let mut cases = Cases::new("self-test");
        let mut ran = Vec::new();
        cases
            .run("passes", async {
                ran.push(1);
                Ok(())
            })
            .await;
        cases
            .run("errs", async { anyhow::bail!("bad input") })
            .await;
        cases
            .run("panics", async {
                panic!("boom");
            })
            .await;
        cases
            .run("still runs", async {
                ran.push(4);
                Ok(())
            })
            .await;
        assert_eq!(ran, vec![1, 4]);
        let err = cases.finish().unwrap_err().to_string();
        assert!(err.contains("2 of 4 cases failed"), "{err}");
        assert!(err.contains("errs: bad input"), "{err}");
        assert!(err.contains("panics: panicked: boom"), "{err}");
        assert!(!err.contains("passes"), "{err}");
    }

    #[tokio::test]
    async fn all_passing_is_ok() {
        let mut cases = Cases::new("self-test");
        cases.run("one", async { Ok(()) }).await;
        assert!(cases.finish().is_ok());
    }
}
