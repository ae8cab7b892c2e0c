//! A group's `hedge` setting, against the simulator.

use std::time::Duration;

use seawall_gateway::{Config, HedgeConfig};
use seawall_sim::{Fault, FaultRule, Provider};

mod support;
use support::{chat, hello, send, start};

#[tokio::test]
async fn a_hedge_answers_while_the_primary_is_slow_to_its_first_byte() {
    let (sim, gw) = start(|c| {
        c.groups[0].hedge = Some(HedgeConfig {
            after: Some(Duration::from_millis(500)),
            quantile: None,
            min: None,
            max: None,
            max_extra: 1,
        });
    })
    .await;
    // The primary (sim-openai) holds every answer for a minute: far past the hedge.
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::SlowFirstByte { ms: 60_000 })],
    );
    let addr = gw.local_addr();
    for stream in [false, true] {
        let reply = chat(addr, hello(stream)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.header("x-seawall-target"), Some("sim-anthropic"));
        assert_eq!(
            reply.header("x-seawall-attempts"),
            Some("2"),
            "the primary and the hedge"
        );
        if stream {
            assert!(
                reply.body.contains("claude-3-5-haiku-latest"),
                "{}",
                reply.body
            );
        } else {
            assert_eq!(reply.json()["model"], "claude-3-5-haiku-latest");
        }
    }
    // Both targets were sent each call; the third never was.
    assert_eq!(sim.requests_for(Provider::OpenAi).len(), 2);
    assert_eq!(sim.requests_for(Provider::Anthropic).len(), 2);
    assert!(sim.requests_for(Provider::Gemini).is_empty());
    // The metrics say which attempt won.
    let metrics = send(addr, "GET", "/metrics", &[], b"").await;
    let m = support::openmetrics::Exposition::parse(&metrics.body);
    assert_eq!(
        m.sum(
            "seawall_gateway_hedges_total",
            &[("target", "sim-anthropic"), ("result", "won")]
        ),
        2.0,
        "{}",
        metrics.body
    );
    assert_eq!(
        m.sum(
            "seawall_gateway_attempts_total",
            &[("target", "sim-openai"), ("outcome", "cancelled")]
        ),
        2.0
    );
    // A hedge is not a failover: the status lists none.
    let status = send(addr, "GET", "/status.json", &[], b"").await;
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(status.json()["recent_failovers"], serde_json::json!([]));
    gw.shutdown().await;
}

#[tokio::test]
async fn without_a_hedge_the_slow_primary_is_waited_for() {
    let (sim, gw) = start(|_| {}).await;
    sim.set_faults(
        Provider::OpenAi,
        vec![FaultRule::always(Fault::SlowFirstByte { ms: 300 })],
    );
    let reply = chat(gw.local_addr(), hello(false)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("x-seawall-target"), Some("sim-openai"));
    assert!(sim.requests_for(Provider::Anthropic).is_empty());
    gw.shutdown().await;
}

const TARGET: &str =
    "[[targets]]\nname = \"t\"\nprovider = \"openai\"\nmodel = \"m\"\napi_key_env = \"K\"\n";

fn group(hedge: &str) -> Result<Config, String> {
    let config = Config::from_toml(&format!(
        "{TARGET}[[groups]]\nname = \"chat\"\ntargets = [\"t\"]\nhedge = {hedge}\n"
    ))
    .map_err(|e| e.to_string())?;
    config
        .validate(&|_| Some("sk".to_owned()))
        .map_err(|e| e.to_string())?;
    Ok(config)
}

#[test]
fn the_hedge_setting_is_read_and_checked() {
    let config = group(r#"{ quantile = 0.95, min = "50ms", max = "2s" }"#).unwrap();
    let hedge = config.groups[0].hedge.as_ref().unwrap();
    assert_eq!(hedge.quantile, Some(0.95));
    assert_eq!(hedge.min, Some(Duration::from_millis(50)));
    assert_eq!(hedge.max, Some(Duration::from_secs(2)));
    assert_eq!(hedge.max_extra, 1);
    let config = group(r#"{ after = "300ms", max_extra = 2 }"#).unwrap();
    assert_eq!(
        config.groups[0].hedge.as_ref().unwrap().after,
        Some(Duration::from_millis(300))
    );

    for (bad, says) in [
        ("{}", "groups[0].hedge: set `after` or `quantile`"),
        ("{ quantile = 0.9 }", "set `after` or `max`"),
        (
            r#"{ quantile = 1.5, after = "1s" }"#,
            "groups[0].hedge.quantile",
        ),
        (
            r#"{ after = "1s", max_extra = 0 }"#,
            "groups[0].hedge.max_extra",
        ),
        (
            r#"{ quantile = 0.9, min = "2s", max = "1s" }"#,
            "groups[0].hedge.min",
        ),
        (r#"{ after = "1s", delay = "2s" }"#, "unknown field `delay`"),
    ] {
        let error = group(bad).unwrap_err();
        assert!(error.contains(says), "{bad}: {error}");
    }
}
