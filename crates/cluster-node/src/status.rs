//! `cluster-node status`: a node's view as tables.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cluster_provisioning::view::{MembersView, ProvidersView};
use comfy_table::{LineStyle, Table, presets};

/// Fetches and prints once, or refreshes in place with `watch`.
pub fn command(admin: &str, watch: bool, interval: Duration) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let client: Client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        let base = admin.trim_end_matches('/').to_owned();
        if !watch {
            return match fetch(&client, &base).await {
                Ok((m, p)) => {
                    print!("{}", render(&m, &p, SystemTime::now()));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            };
        }
        loop {
            let screen = match fetch(&client, &base).await {
                Ok((m, p)) => render(&m, &p, SystemTime::now()),
                Err(e) => format!("{e}\n(retrying every {interval:?}; Ctrl-C to stop)\n"),
            };
            // Clear the screen and draw from the top-left corner.
            print!("\x1b[2J\x1b[H{screen}");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
                () = tokio::time::sleep(interval) => {}
            }
        }
    })
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Empty<hyper::body::Bytes>,
>;

async fn fetch(client: &Client, base: &str) -> Result<(MembersView, ProvidersView), String> {
    async fn get<T: cluster_provisioning::view::DeserializeOwned>(
        client: &Client,
        url: String,
    ) -> Result<T, String> {
        use http_body_util::BodyExt;
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| format!("{url}: not an http URL: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("{url}: only http:// admin addresses are supported"));
        }
        let resp = tokio::time::timeout(Duration::from_secs(3), client.get(uri))
            .await
            .map_err(|_| format!("{url}: no answer within 3s"))?
            .map_err(|e| format!("{url}: {}", crate::chain(&e)))?;
        let status = resp.status();
        let body = tokio::time::timeout(Duration::from_secs(3), resp.into_body().collect())
            .await
            .map_err(|_| format!("{url}: the body did not arrive within 3s"))?
            .map_err(|e| format!("{url}: {e}"))?
            .to_bytes();
        let body = String::from_utf8_lossy(&body);
        if !status.is_success() {
            return Err(format!("{url}: {status}: {}", body.trim()));
        }
        serde_json::from_str(&body).map_err(|e| format!("{url}: unexpected answer: {e}"))
    }
    let members = get(client, format!("{base}/cluster/members")).await?;
    let providers = get(client, format!("{base}/cluster/providers")).await?;
    Ok((members, providers))
}

fn age(now: SystemTime, unix: Option<f64>) -> String {
    let Some(t) = unix else {
        return "never".to_owned();
    };
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let secs = (now - t).max(0.0);
    if secs < 10.0 {
        format!("{secs:.1}s ago")
    } else if secs < 120.0 {
        format!("{secs:.0}s ago")
    } else {
        format!("{:.0}m ago", secs / 60.0)
    }
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    // Columns and one rule under the header, as `kubectl get` prints.
    t.load_style(presets::NOTHING.header_separator(LineStyle::none().fill('─').junction('─')));
    t.set_header(header.to_vec());
    t
}

/// The status screen for a node's views at `now`.
pub fn render(m: &MembersView, p: &ProvidersView, now: SystemTime) -> String {
    let up = m.members.iter().filter(|r| r.state == "up").count();
    let quarantined = m.members.len() - up;
    let mut out = format!(
        "cluster {} · node {} · status {} · {} up, {} quarantined · failovers {}\n\
         topology seq {} · hash {} · active provider {}{}\n\n",
        m.cluster,
        m.node,
        m.status,
        up,
        quarantined,
        m.failovers,
        m.seq_no,
        m.hash,
        m.active_provider.as_deref().unwrap_or("none"),
        if m.stale {
            " (restored, not yet confirmed)"
        } else {
            ""
        },
    );
    let mut members = table(&[
        "node",
        "address",
        "incarnation",
        "state",
        "providers",
        "roles",
    ]);
    for r in &m.members {
        let node = if r.is_self {
            format!("{} (self)", r.node)
        } else {
            r.node.clone()
        };
        members.add_row(vec![
            node,
            r.address.clone(),
            r.incarnation.to_string(),
            r.state.clone(),
            if r.providers.is_empty() {
                "-".to_owned()
            } else {
                r.providers.join(", ")
            },
            if r.roles.is_empty() {
                "-".to_owned()
            } else {
                r.roles.join(", ")
            },
        ]);
    }
    out.push_str(&format!("MEMBERS\n{members}\n\n"));
    let mut providers = table(&[
        "provider",
        "kind",
        "priority",
        "health",
        "active",
        "last update",
        "members",
        "last error",
    ]);
    for r in &p.providers {
        let error = match (&r.last_error, &r.disabled_reason) {
            (_, Some(d)) => d.clone(),
            (Some(e), None) => e.clone(),
            (None, None) => "-".to_owned(),
        };
        providers.add_row(vec![
            r.id.clone(),
            r.kind.clone(),
            r.priority.to_string(),
            r.health.clone(),
            if r.active { "yes".into() } else { "".into() },
            age(now, r.last_update_unix),
            r.members.to_string(),
            error,
        ]);
    }
    out.push_str(&format!("PROVIDERS\n{providers}\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_provisioning::view::{MemberView, ProviderView};

    fn views() -> (MembersView, ProvidersView) {
        let member = |node: &str, port: u16, state: &str, is_self: bool| MemberView {
            node: node.into(),
            address: format!("127.0.0.1:{port}"),
            incarnation: 1_733_500_000_000_000 + u64::from(port),
            state: state.into(),
            is_self,
            providers: if state == "up" {
                vec!["shared-dir".into()]
            } else {
                vec![]
            },
            roles: vec![],
        };
        let m = MembersView {
            cluster: "shop".into(),
            node: "node-a".into(),
            status: "active".into(),
            seq_no: 12,
            hash: "00ff00ff00ff00ff".into(),
            active_provider: Some("shared-dir".into()),
            stale: false,
            members: vec![
                member("node-a", 4001, "up", true),
                member("node-b", 4002, "up", false),
                member("node-c", 4003, "quarantined", false),
            ],
            failovers: 1,
        };
        let provider =
            |id: &str, prio: u32, health: &str, active: bool, last: Option<f64>| ProviderView {
                id: id.into(),
                kind: "file".into(),
                priority: prio,
                health: health.into(),
                active,
                last_update_unix: last,
                last_error: None,
                disabled_reason: None,
                members: 3,
            };
        let mut standby = provider("standby", 1, "degraded", false, Some(1000.0));
        standby.last_error = Some("provider.connectivity".into());
        let p = ProvidersView {
            node: "node-a".into(),
            failovers: 1,
            providers: vec![
                provider("shared-dir", 0, "healthy", true, Some(1999.5)),
                standby,
            ],
        };
        (m, p)
    }

    /// N2: the status screen, rendered from a fixed view (a snapshot: a
    /// change to the layout shows here).
    #[test]
    fn n2_status_renders_members_providers_quarantines_and_failovers() {
        let (m, p) = views();
        let now = UNIX_EPOCH + Duration::from_secs(2000);
        let screen = render(&m, &p, now);
        let expected = "\
cluster shop · node node-a · status active · 2 up, 1 quarantined · failovers 1
topology seq 12 · hash 00ff00ff00ff00ff · active provider shared-dir

MEMBERS
 node            address          incarnation        state         providers    roles 
──────────────────────────────────────────────────────────────────────────────────────
 node-a (self)   127.0.0.1:4001   1733500000004001   up            shared-dir   -     
 node-b          127.0.0.1:4002   1733500000004002   up            shared-dir   -     
 node-c          127.0.0.1:4003   1733500000004003   quarantined   -            -     

PROVIDERS
";
        assert!(
            screen.starts_with(expected),
            "the screen changed:\n{screen}\n--- expected to start with ---\n{expected}"
        );
        for needle in [
            "shared-dir",
            "healthy",
            "0.5s ago",
            "degraded",
            "17m ago",
            "provider.connectivity",
        ] {
            assert!(screen.contains(needle), "{needle} missing:\n{screen}");
        }
    }

    #[test]
    fn ages_read_as_a_person_would() {
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        assert_eq!(age(now, None), "never");
        assert_eq!(age(now, Some(999.75)), "0.2s ago");
        assert_eq!(age(now, Some(970.0)), "30s ago");
        assert_eq!(age(now, Some(400.0)), "10m ago");
    }
}
