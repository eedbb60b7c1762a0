//! End-to-end on a three-node swarm (`xtask::testbed::nodes`: Docker engines in privileged
//! containers on one network, each serving the host's htpasswd registry at its address). The
//! released `disinto` runs on node1, the manager; node2 holds the volumes; node2 and node3 are
//! workers with no login of their own.
//!
//! Bad input first, each refused in one line with nothing deployed: no labelled node, two,
//! a worker whose registry is down, and `projects/` missing on the labelled node.
//! Then v0.1.0 runs (agents on node2, edge elsewhere), the markers in the four agent volumes
//! survive an upgrade to v0.2.0 and a v0.3.0 that Swarm rolls back. With node2 stopped,
//! agents is started nowhere else, `swarm status` says why it is pending and deploy refuses;
//! back, agents runs on node2 again with the markers. Draining edge's node moves edge and
//! leaves agents alone. Everything made is removed on drop, failure included.

mod common;

use std::time::{Duration, Instant};

use common::swarm::*;
use common::*;
use xtask::testbed::Registry;

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn three_nodes_keep_agents_with_its_data() {
    bench();
    let started = Instant::now();
    let registry = Registry::start().unwrap();
    let ns = registry.namespace();
    let _images = Images(ns.clone());
    let host_config = TempDir::new("swarm-nodes-config").unwrap();
    let SwarmReleases { v1, v2, .. } = swarm_releases(&registry, host_config.path());
    eprintln!("three releases: {:.0?}", started.elapsed());

    let swarm = Swarm::start(
        3,
        &registry,
        &format!("{ns}/agents:v0.2.0"),
        host_config.path(),
    );
    eprintln!("three nodes: {:.0?}", started.elapsed());
    let env = |version: &str| {
        format!(
            "AGENTS_IMAGE={version}\nDISINTO_REGISTRY={ns}\nPOLL_INTERVAL=1\nEDGE_HTTP_PORT=0\n"
        )
    };
    let set_version = |version: &str| swarm.set_env(&env(version));
    set_version("v0.1.0");

    // Bad input, each refused in one line before anything of the stack is made.
    let e = swarm.refused("no labelled node");
    assert!(e.contains("none is labelled disinto.volumes=true"), "{e}");
    swarm.label("node2", true);
    swarm.label("node3", true);
    let e = swarm.refused("two labelled nodes");
    assert!(e.contains("node2") && e.contains("node3"), "{e}");
    swarm.label("node3", false);
    // A dry run prints the two checks it would ask Swarm, and makes neither.
    let (dry, _) = swarm.ok(&["deploy", "--dry-run"]);
    for check in [
        "check-pull --mode global-job",
        "check-bind --mode replicated-job",
    ] {
        assert!(
            dry.lines()
                .any(|l| l.starts_with("$ docker service create") && l.contains(check)),
            "{check}: {dry}"
        );
    }
    assert_eq!(swarm.docker(1, &["service", "ls", "--quiet"]), "");
    // node3's registry stops: nothing answers where node3 pulls from.
    swarm.nodes.stop_registry(3).unwrap();
    let e = swarm.refused("a worker that cannot reach the registry");
    assert!(e.contains("node node3 cannot pull"), "{e}");
    swarm.nodes.start_registry(3).unwrap();
    // The labelled node is not this one, and has no projects/ at the factory's path.
    let e = swarm.refused("projects/ missing on the labelled node");
    assert!(
        e.contains(&format!("{FACTORY}/projects does not exist on node node2")),
        "{e}"
    );
    ok(swarm
        .nodes
        .exec(2)
        .args(["mkdir", "-p", &format!("{FACTORY}/projects")]));
    eprintln!("bad input refused: {:.0?}", started.elapsed());

    // v0.1.0: agents on node2, which pulls with the credentials the deploy forwarded.
    let (_, deploy_time) = swarm.ok(&["deploy"]);
    eprintln!("figure: first deploy on three nodes (v0.1.0): {deploy_time:.0?}");
    let (_, image) = swarm.agents_on(2);
    assert!(image.ends_with(&format!("@{v1}")), "{image}");
    let config = ok(swarm
        .nodes
        .exec(2)
        .args(["sh", "-c", "ls /root/.docker 2>/dev/null; true"]));
    assert_eq!(config.trim(), "", "node2 has a login of its own");
    swarm.wait(
        "edge runs",
        Duration::from_secs(120),
        || swarm.running("edge"),
        |r| r.len() == 1,
    );
    let status = swarm.status();
    for service in ["agents", "edge", "forgejo", "woodpecker"] {
        assert_eq!(status[service]["replicas"], "1/1", "{service}: {status:?}");
    }
    for service in ["agents", "forgejo", "woodpecker"] {
        let on: Vec<String> = swarm.running(service).into_iter().map(|r| r.1).collect();
        assert_eq!(on, ["node2"], "{service}");
    }
    let marker = unique("m-");
    swarm.write_markers(2, &marker);

    // v0.2.0: an upgrade Swarm completes, on node2, with the data.
    set_version("v0.2.0");
    let (_, upgrade_time) = swarm.ok(&["deploy"]);
    eprintln!("figure: upgrade on three nodes (v0.1.0 to v0.2.0): {upgrade_time:.0?}");
    let (_, image) = swarm.agents_on(2);
    assert!(image.ends_with(&format!("@{v2}")), "{image}");
    assert_eq!(swarm.markers(2), vec![marker.clone(); 4]);

    // v0.3.0 never turns healthy: Swarm rolls agents back to v0.2.0 on node2.
    set_version("v0.3.0");
    let start = Instant::now();
    let out = swarm.disinto(&["deploy"]);
    let rollback_time = start.elapsed();
    eprintln!("figure: failed release rolled back by Swarm on three nodes: {rollback_time:.0?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.lines().last().unwrap_or("").starts_with(&format!(
            "error: Swarm rolled {} back",
            swarm.service("agents")
        )),
        "{stderr}"
    );
    let (_, image) = swarm.agents_on(2);
    assert!(image.ends_with(&format!("@{v2}")), "{image}");
    assert_eq!(swarm.spec_image("runner"), swarm.spec_image("agents"));
    assert_eq!(swarm.markers(2), vec![marker.clone(); 4]);
    set_version("v0.2.0");

    // node2 stops: agents is started nowhere else, status says why, deploy refuses.
    let agents_spec = swarm.spec_image("agents");
    swarm.nodes.stop(2).unwrap();
    let down = swarm
        .nodes
        .wait_node_state(2, "down", Duration::from_secs(90))
        .unwrap();
    eprintln!("node2 seen down after {down:.0?}");
    swarm.wait(
        "agents pending while node2 is down",
        Duration::from_secs(120),
        || swarm.status(),
        |s| {
            s["agents"]["replicas"] == "0/1"
                && s["agents"]["why"]
                    .as_str()
                    .is_some_and(|w| w.starts_with("pending") && w.contains("no suitable node"))
        },
    );
    let status = swarm.status();
    eprintln!(
        "status while node2 is down: agents {}",
        status["agents"]["why"]
    );
    assert!(swarm.running("agents").is_empty());
    let out = swarm.disinto(&["deploy"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr
            .lines()
            .last()
            .unwrap_or("")
            .contains("node node2 is labelled disinto.volumes=true but is down"),
        "{stderr}"
    );
    assert_eq!(swarm.spec_image("agents"), agents_spec);
    // Still nowhere else, a while later.
    std::thread::sleep(Duration::from_secs(5));
    assert!(swarm.running("agents").is_empty());

    // node2 back: agents runs there again, with the data.
    let start = Instant::now();
    swarm.nodes.start_again(2).unwrap();
    swarm
        .nodes
        .wait_node_state(2, "ready", Duration::from_secs(90))
        .unwrap();
    swarm.wait(
        "agents back on node2",
        Duration::from_secs(180),
        || swarm.running("agents"),
        |r| r.len() == 1 && r[0].1 == "node2",
    );
    eprintln!(
        "agents runs on node2 again {:.0?} after it was started",
        start.elapsed()
    );
    let (_, image) = swarm.agents_on(2);
    assert!(image.ends_with(&format!("@{v2}")), "{image}");
    assert_eq!(swarm.markers(2), vec![marker.clone(); 4]);

    // Draining edge's node (not node2: Swarm spreads edge away from node2's three tasks)
    // moves edge, and agents' task is the same one.
    let edge = swarm.running("edge");
    assert_eq!(edge.len(), 1, "{edge:?}");
    let edge_node = edge[0].1.clone();
    assert_ne!(edge_node, "node2", "edge runs beside agents");
    let agents_task = swarm.running("agents");
    swarm.docker(
        1,
        &["node", "update", "--availability", "drain", &edge_node],
    );
    let moved = swarm.wait(
        "edge moves off the drained node",
        Duration::from_secs(120),
        || swarm.running("edge"),
        |r| r.len() == 1 && r[0].1 != edge_node,
    );
    eprintln!("edge moved off {edge_node} in {moved:.0?}");
    assert_eq!(swarm.running("agents"), agents_task);
    swarm.docker(
        1,
        &["node", "update", "--availability", "active", &edge_node],
    );
    eprintln!("whole test: {:.0?}", started.elapsed());
}
