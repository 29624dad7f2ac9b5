//! The two-process service of issue 18: orders (a list of items per order)
//! as stateful grains over the `file` provider, with their state in the
//! node's `[storage]` (SQLite by default in the test). Orders keep their
//! items across a graceful leave and across a crash.
//!
//! ```sh
//! orders-service serve node.toml            # host orders until SIGTERM (graceful leave);
//!                                           # stdin commands: `fill 10`, `check 10`
//! orders-service fill node.toml 10          # join, add "apple" and "pear" to o-0..o-9, leave
//! orders-service check node.toml 10         # join, print how many orders are intact, leave
//! ```
//!
//! `crates/.../examples/tests/orders.rs` runs it as several processes.

use std::process::ExitCode;
use std::time::Duration;

use cluster_provisioning::{
    DeactivationReason, Grain, GrainContext, GrainError, GrainOptions, Node, PersistentState,
};

/// An order: its items, saved on every change (write-through) and loaded
/// when the order is activated on its owner.
#[derive(Default)]
struct Order {
    items: PersistentState<Vec<String>>,
}

impl Grain for Order {
    type Request = Option<String>;
    type Response = Result<Vec<String>, String>;

    async fn on_activate(&mut self, ctx: &GrainContext) -> Result<(), GrainError> {
        self.items.load(ctx).await
    }

    async fn handle(&mut self, item: Option<String>) -> Self::Response {
        if let Some(item) = item {
            self.items.get_mut().push(item);
            if let Err(e) = self.items.save().await {
                // Not saved (a conflict: another activation wrote first; or
                // the store is down): drop the change, answer the error.
                let _ = self.items.reload().await;
                return Err(e.code().to_owned());
            }
        }
        Ok(self.items.get().clone())
    }

    async fn on_deactivate(&mut self, _reason: DeactivationReason) -> Result<(), GrainError> {
        // Saved on every change already: nothing left to write.
        Ok(())
    }
}

async fn request(node: &Node, id: &str, item: Option<&str>) -> Result<Vec<String>, String> {
    // Retried while the cluster settles (a member just left or crashed). A
    // read is retried whatever failed; a write only when it cannot have run
    // (retrying a write that may have run would add the item twice).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let r = node
            .cluster()
            .request::<Order>("order", id, &item.map(str::to_owned))
            .await;
        let never_ran = |code: &str| {
            matches!(
                code,
                "placement.not_owner" | "placement.handed_off" | "placement.remote"
            ) || code.starts_with("provisioning.")
        };
        match r {
            Ok(answer) => return answer,
            Err(e)
                if tokio::time::Instant::now() < deadline
                    && (item.is_none() || never_ran(e.code())) =>
            {
                eprintln!("{id}: {} ({}); retrying", e, e.code());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.code().to_owned()),
        }
    }
}

/// Adds "apple" and "pear" to o-0..o-(n-1); prints `filled n`.
async fn fill(node: &Node, orders: usize) -> bool {
    let mut ok = true;
    for i in 0..orders {
        for item in ["apple", "pear"] {
            if let Err(e) = request(node, &format!("o-{i}"), Some(item)).await {
                eprintln!("o-{i}: {e}");
                ok = false;
            }
        }
    }
    println!("filled {orders}");
    ok
}

/// Prints `k of n orders intact`.
async fn check(node: &Node, orders: usize) -> bool {
    let mut intact = 0;
    for i in 0..orders {
        match request(node, &format!("o-{i}"), None).await {
            Ok(items) if items == ["apple", "pear"] => intact += 1,
            other => eprintln!("o-{i}: {other:?}"),
        }
    }
    println!("{intact} of {orders} orders intact");
    intact == orders
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, path) = match (args.first(), args.get(1)) {
        (Some(m), Some(p)) => (m.clone(), p.clone()),
        _ => {
            eprintln!("usage: orders-service serve|fill|check <config.toml> [orders]");
            return ExitCode::from(2);
        }
    };
    let orders: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(10);
    let node = match Node::from_file(&path) {
        Ok(b) => b.stored_grain("order", GrainOptions::new(), |_| Order::default()),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let node = match node.start().await {
        Ok(n) => n,
        Err(e) => {
            eprintln!("{e} ({})", e.code());
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = node.ready(Duration::from_secs(15)).await {
        eprintln!("not ready: {e}");
        return ExitCode::FAILURE;
    }
    let code = match mode.as_str() {
        "serve" => {
            println!("serving");
            // Commands on stdin, answers on stdout, one line each.
            let commands = node.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt;
                let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut words = line.split_whitespace();
                    let (cmd, n) = (words.next(), words.next().and_then(|n| n.parse().ok()));
                    match (cmd, n) {
                        (Some("fill"), Some(n)) => {
                            fill(&commands, n).await;
                        }
                        (Some("check"), Some(n)) => {
                            check(&commands, n).await;
                        }
                        _ => println!("? fill N | check N"),
                    }
                }
            });
            node.run_until_signal().await;
            // Exit here: the runtime would otherwise wait at its end for the
            // blocking read of stdin above.
            std::process::exit(0);
        }
        "fill" => {
            if fill(&node, orders).await {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        "check" => {
            if check(&node, orders).await {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        other => {
            eprintln!("unknown mode {other:?}");
            ExitCode::from(2)
        }
    };
    node.leave().await;
    node.shutdown().await;
    code
}
