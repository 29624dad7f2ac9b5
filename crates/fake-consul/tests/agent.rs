//! The fake agent on its own, spoken to over plain HTTP/1.1 like any client
//! would (P2 test support).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use fake_consul::{Access, CheckStatus, FakeConsul};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

struct Answer {
    status: u16,
    index: Option<u64>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

async fn call(
    consul: &FakeConsul,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Result<Answer, hyper::Error> {
    let stream = TcpStream::connect(consul.addr()).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", consul.addr().to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let resp = tx
        .send_request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await?;
    let status = resp.status().as_u16();
    let index = resp
        .headers()
        .get("x-consul-index")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(Answer {
        status,
        index,
        body: String::from_utf8(body.to_vec()).unwrap(),
    })
}

async fn put(consul: &FakeConsul, path: &str, body: Option<Value>) -> Answer {
    call(consul, Method::PUT, path, &[], body).await.unwrap()
}

async fn get(consul: &FakeConsul, path: &str) -> Answer {
    call(consul, Method::GET, path, &[], None).await.unwrap()
}

fn web(id: &str, ttl: &str, status: &str) -> Value {
    json!({
        "Name": "web", "ID": id, "Address": "10.0.0.1", "Port": 80,
        "Meta": {"node_id": id}, "Tags": ["a"],
        "Check": {"TTL": ttl, "Status": status, "DeregisterCriticalServiceAfter": "200ms"},
    })
}

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(15), f)
        .await
        .expect("test bounded at 15 s")
}

/// P2: registration shows in /v1/health/service with the documented entry
/// shape; X-Consul-Index grows with every change; deregistration of an
/// unknown ID is a 404.
#[tokio::test]
async fn p2_register_health_and_deregister_with_growing_index() {
    within(async {
        let c = FakeConsul::start().await.unwrap();
        let before = get(&c, "/v1/health/service/web").await;
        assert_eq!(before.status, 200);
        assert_eq!(before.json(), json!([]));
        let i0 = before.index.unwrap();
        assert!(i0 >= 1);
        assert_eq!(
            put(
                &c,
                "/v1/agent/service/register",
                Some(web("w1", "10s", "passing"))
            )
            .await
            .status,
            200
        );
        let a = get(&c, "/v1/health/service/web?passing").await;
        let i1 = a.index.unwrap();
        assert!(i1 > i0, "index grows: {i0} -> {i1}");
        let e = &a.json()[0];
        assert_eq!(e["Service"]["ID"], "w1");
        assert_eq!(e["Service"]["Port"], 80);
        assert_eq!(e["Service"]["Meta"]["node_id"], "w1");
        assert_eq!(e["Node"]["Node"], "node-1");
        assert_eq!(e["Checks"][0]["CheckID"], "serfHealth");
        assert_eq!(e["Checks"][1]["CheckID"], "service:w1");
        assert_eq!(e["Checks"][1]["Status"], "passing");
        assert_eq!(
            put(&c, "/v1/agent/service/deregister/w1", None)
                .await
                .status,
            200
        );
        let b = get(&c, "/v1/health/service/web").await;
        assert!(b.index.unwrap() > i1);
        assert_eq!(b.json(), json!([]));
        let missing = put(&c, "/v1/agent/service/deregister/w1", None).await;
        assert_eq!(missing.status, 404);
        assert!(missing.body.contains("Unknown service ID"));
        // Bad registrations are 400s with Consul's reasons.
        let bad = put(&c, "/v1/agent/service/register", Some(json!({"ID": "x"}))).await;
        assert_eq!(
            (bad.status, bad.body.as_str()),
            (400, "Missing service name")
        );
        let bad = put(
            &c,
            "/v1/agent/service/register",
            Some(json!({"Name": "web", "Meta": {"bad.key": "v"}})),
        )
        .await;
        assert_eq!(bad.status, 400);
        assert!(bad.body.contains("Invalid Service Meta"));
        assert_eq!(get(&c, "/v1/agent/service/register").await.status, 405);
    })
    .await;
}

/// P2: a TTL check starts critical unless registered passing; `?passing`
/// hides critical instances; pass / update revive it; an unknown check is
/// a 404.
#[tokio::test]
async fn p2_ttl_checks_pass_update_and_unknown_check() {
    within(async {
        let c = FakeConsul::start().await.unwrap();
        put(&c, "/v1/agent/service/register", Some(web("w1", "30s", ""))).await;
        assert_eq!(c.check_status("service:w1"), Some(CheckStatus::Critical));
        assert_eq!(
            get(&c, "/v1/health/service/web")
                .await
                .json()
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            get(&c, "/v1/health/service/web?passing").await.json(),
            json!([])
        );
        assert_eq!(
            put(&c, "/v1/agent/check/pass/service:w1?note=ok", None)
                .await
                .status,
            200
        );
        assert_eq!(
            get(&c, "/v1/health/service/web?passing=true")
                .await
                .json()
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let upd = put(
            &c,
            "/v1/agent/check/update/service:w1",
            Some(json!({"Status": "warning", "Output": "meh"})),
        )
        .await;
        assert_eq!(upd.status, 200);
        assert_eq!(c.check_status("service:w1"), Some(CheckStatus::Warning));
        assert_eq!(
            get(&c, "/v1/health/service/web?passing").await.json(),
            json!([]),
            "warning is not passing"
        );
        let bad = put(
            &c,
            "/v1/agent/check/update/service:w1",
            Some(json!({"Status": "fine"})),
        )
        .await;
        assert_eq!(bad.status, 400);
        let unknown = put(&c, "/v1/agent/check/pass/service:nope", None).await;
        assert_eq!(unknown.status, 404);
        assert!(
            unknown.body.contains("Unknown check ID"),
            "{}",
            unknown.body
        );
    })
    .await;
}

/// P2: a lapsed TTL turns the check critical; the reaper deregisters a
/// service critical for longer than DeregisterCriticalServiceAfter.
#[tokio::test]
async fn p2_lapsed_ttl_turns_critical_and_the_reaper_deregisters() {
    within(async {
        let c = FakeConsul::builder()
            .min_deregister_after(Duration::ZERO)
            .reap_interval(Duration::from_millis(50))
            .start()
            .await
            .unwrap();
        put(
            &c,
            "/v1/agent/service/register",
            Some(web("w1", "100ms", "passing")),
        )
        .await;
        assert_eq!(c.check_status("service:w1"), Some(CheckStatus::Passing));
        while c.check_status("service:w1") == Some(CheckStatus::Passing) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(c.check_status("service:w1"), Some(CheckStatus::Critical));
        let checks = get(&c, "/v1/agent/checks").await.json();
        assert_eq!(checks["service:w1"]["Output"], "TTL expired");
        while !c.service_ids().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(get(&c, "/v1/health/service/web").await.json(), json!([]));
    })
    .await;
}

/// P2: a blocking query waits while the index is unchanged (it is in
/// flight on the agent), returns when the service changes, and the index
/// it returns is greater; without change it returns after `wait` with the
/// same index.
#[tokio::test]
async fn p2_blocking_query_returns_on_change_or_after_wait() {
    within(async {
        let c = FakeConsul::start().await.unwrap();
        put(
            &c,
            "/v1/agent/service/register",
            Some(web("w1", "30s", "passing")),
        )
        .await;
        let i = get(&c, "/v1/health/service/web").await.index.unwrap();
        let c2 = c.clone();
        let q = tokio::spawn(async move {
            get(&c2, &format!("/v1/health/service/web?index={i}&wait=10s")).await
        });
        while c.blocking_in_flight() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A TTL pass with an unchanged status is not a change: still blocked.
        put(&c, "/v1/agent/check/pass/service:w1", None).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !q.is_finished(),
            "an unchanged pass does not wake the query"
        );
        put(
            &c,
            "/v1/agent/service/register",
            Some(web("w2", "30s", "passing")),
        )
        .await;
        let a = q.await.unwrap();
        assert!(a.index.unwrap() > i);
        assert_eq!(a.json().as_array().unwrap().len(), 2);
        // No change: answered after the wait, same index.
        let j = a.index.unwrap();
        let b = get(&c, &format!("/v1/health/service/web?index={j}&wait=100ms")).await;
        assert_eq!(b.index, Some(j));
        assert_eq!(c.blocking_in_flight(), 0);
        assert_eq!(
            get(&c, "/v1/health/service/web?wait=bogus&index=1")
                .await
                .status,
            400
        );
        // Counters per endpoint.
        assert_eq!(c.request_count("GET /v1/health/service"), 4);
        assert_eq!(c.request_count("PUT /v1/agent/service/register"), 2);
        assert_eq!(c.request_count("PUT /v1/agent/check/pass"), 1);
    })
    .await;
}

/// P2: after an index reset a client blocking on its old index gets an
/// answer with a lower index (at the end of its wait), as on a real
/// cluster restored from a snapshot.
#[tokio::test]
async fn p2_index_reset_goes_backwards() {
    within(async {
        let c = FakeConsul::start().await.unwrap();
        for id in ["w1", "w2", "w3"] {
            put(
                &c,
                "/v1/agent/service/register",
                Some(web(id, "30s", "passing")),
            )
            .await;
        }
        let i = get(&c, "/v1/health/service/web").await.index.unwrap();
        assert!(i > 3);
        c.reset_index(1);
        let a = get(&c, &format!("/v1/health/service/web?index={i}&wait=100ms")).await;
        assert!(a.index.unwrap() < i, "{:?} < {i}", a.index);
        put(&c, "/v1/agent/service/deregister/w3", None).await;
        let b = get(&c, "/v1/health/service/web?index=1&wait=1s").await;
        assert_eq!(b.index, Some(2), "monotonic again from the reset point");
    })
    .await;
}

/// P2: with ACLs on, an unknown token is 403 "ACL not found", no token or a
/// read-only one is 403 "Permission denied" for writes; X-Consul-Token,
/// `Authorization: Bearer` and `?token=` are all accepted.
#[tokio::test]
async fn p2_acl_tokens_and_403s() {
    within(async {
        let c = FakeConsul::builder()
            .token("writer", Access::Write)
            .token("reader", Access::Read)
            .start()
            .await
            .unwrap();
        let bad = call(
            &c,
            Method::GET,
            "/v1/agent/self",
            &[("X-Consul-Token", "nope")],
            None,
        )
        .await
        .unwrap();
        assert_eq!((bad.status, bad.body.as_str()), (403, "ACL not found"));
        let anon = get(&c, "/v1/agent/self").await;
        assert_eq!(anon.status, 403);
        assert!(anon.body.starts_with("Permission denied"), "{}", anon.body);
        let ro = call(
            &c,
            Method::PUT,
            "/v1/agent/service/register",
            &[("X-Consul-Token", "reader")],
            Some(web("w1", "10s", "passing")),
        )
        .await
        .unwrap();
        assert_eq!(ro.status, 403);
        assert!(ro.body.contains("service:write"), "{}", ro.body);
        let ok = call(
            &c,
            Method::PUT,
            "/v1/agent/service/register",
            &[("Authorization", "Bearer writer")],
            Some(web("w1", "10s", "passing")),
        )
        .await
        .unwrap();
        assert_eq!(ok.status, 200);
        let read = get(&c, "/v1/health/service/web?token=reader").await;
        assert_eq!(read.status, 200);
        assert_eq!(read.json().as_array().unwrap().len(), 1);
        let me = call(
            &c,
            Method::GET,
            "/v1/agent/self",
            &[("X-Consul-Token", "reader")],
            None,
        )
        .await
        .unwrap();
        assert_eq!(me.json()["Config"]["NodeName"], "node-1");
        assert_eq!(get(&c, "/v1/status/leader").await.status, 200, "no ACL");
    })
    .await;
}

/// P2: set_token changes a token's access at run time (a policy edited):
/// downgraded to AgentRead, health reads are filtered to nothing; revoked,
/// it is "ACL not found"; granted again, it works again.
#[tokio::test]
async fn p2_set_token_changes_access_at_run_time() {
    within(async {
        let c = FakeConsul::builder()
            .token("writer", Access::Write)
            .start()
            .await
            .unwrap();
        let register = |token: &'static str| {
            let c = c.clone();
            async move {
                call(
                    &c,
                    Method::PUT,
                    "/v1/agent/service/register",
                    &[("X-Consul-Token", token)],
                    Some(web("w1", "10s", "passing")),
                )
                .await
                .unwrap()
                .status
            }
        };
        assert_eq!(register("writer").await, 200);
        c.set_token("writer", Some(Access::AgentRead));
        let read = get(&c, "/v1/health/service/web?token=writer").await;
        assert_eq!(read.status, 200);
        assert!(read.json().as_array().unwrap().is_empty(), "filtered");
        assert_eq!(register("writer").await, 403);
        c.set_token("writer", None);
        let gone = get(&c, "/v1/health/service/web?token=writer").await;
        assert_eq!((gone.status, gone.body.as_str()), (403, "ACL not found"));
        c.set_token("writer", Some(Access::Write));
        let back = get(&c, "/v1/health/service/web?token=writer").await;
        assert_eq!(back.json().as_array().unwrap().len(), 1);
    })
    .await;
}

/// P2 faults: 500s, dropped connections, malformed JSON, refused check
/// updates, agent restart (forgets), stop (refused, node critical) and
/// start on the same port; two agents share one catalog.
#[tokio::test]
async fn p2_faults_and_two_agents_share_a_catalog() {
    within(async {
        let a = FakeConsul::start().await.unwrap();
        let b = a.join("node-2").await.unwrap();
        assert_ne!(a.addr(), b.addr());
        put(
            &b,
            "/v1/agent/service/register",
            Some(web("w2", "30s", "passing")),
        )
        .await;
        let seen = get(&a, "/v1/health/service/web?passing").await.json();
        assert_eq!(
            seen[0]["Node"]["Node"], "node-2",
            "registered on b, seen through a"
        );

        a.fail_next(2);
        assert_eq!(get(&a, "/v1/status/leader").await.status, 500);
        assert_eq!(get(&a, "/v1/status/leader").await.status, 500);
        assert_eq!(get(&a, "/v1/status/leader").await.status, 200);

        a.drop_next(1);
        assert!(
            call(&a, Method::GET, "/v1/status/leader", &[], None)
                .await
                .is_err()
        );
        assert_eq!(get(&a, "/v1/status/leader").await.status, 200);

        a.malformed_next(1);
        let m = get(&a, "/v1/health/service/web").await;
        assert_eq!(m.status, 200);
        assert!(serde_json::from_str::<Value>(&m.body).is_err());

        b.refuse_check_updates(true);
        assert_eq!(
            put(&b, "/v1/agent/check/pass/service:w2", None)
                .await
                .status,
            500
        );
        b.refuse_check_updates(false);
        assert_eq!(
            put(&b, "/v1/agent/check/pass/service:w2", None)
                .await
                .status,
            200
        );

        b.stop().await;
        assert!(
            TcpStream::connect(b.addr()).await.is_err(),
            "agent down refuses"
        );
        let seen = get(&a, "/v1/health/service/web?passing").await.json();
        assert_eq!(seen, json!([]), "a down agent's services are not passing");
        b.start_again().await.unwrap();
        assert_eq!(
            get(&b, "/v1/health/service/web?passing")
                .await
                .json()
                .as_array()
                .unwrap()
                .len(),
            1
        );

        b.restart();
        assert!(b.service_ids().is_empty());
        assert_eq!(get(&a, "/v1/health/service/web").await.json(), json!([]));
        let again = put(&b, "/v1/agent/check/pass/service:w2", None).await;
        assert_eq!(again.status, 404, "restarted agent forgot the check");
    })
    .await;
}
