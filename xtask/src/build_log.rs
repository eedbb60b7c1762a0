//! Readers of the classic builder's `docker build` log: which steps came from the cache, and
//! how big the context was. The tests and the benchmark use them to prove layer reuse.

/// One step of a classic-builder `docker build` log, and whether it came from the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildStep {
    pub instruction: String,
    pub cached: bool,
}

/// Parses the classic builder's `Step N/M : INSTRUCTION` / ` ---> Using cache` lines.
pub fn parse_build_steps(log: &str) -> Vec<BuildStep> {
    let mut steps: Vec<BuildStep> = Vec::new();
    for line in log.lines() {
        if let Some(rest) = line.strip_prefix("Step ") {
            if let Some((_, instruction)) = rest.split_once(" : ") {
                steps.push(BuildStep {
                    instruction: instruction.trim().to_string(),
                    cached: false,
                });
            }
        } else if line.trim() == "---> Using cache" {
            if let Some(last) = steps.last_mut() {
                last.cached = true;
            }
        }
    }
    steps
}

/// The context size the classic builder reports ("Sending build context to Docker daemon
/// 12.3kB"), in bytes.
pub fn parse_context_size(log: &str) -> Option<u64> {
    let line = log
        .lines()
        .find_map(|l| l.strip_prefix("Sending build context to Docker daemon"))?;
    let value = line.trim();
    let split = value.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.trim().parse().ok()?;
    let scale = match unit {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => return None,
    };
    Some((number * scale).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_log_steps_and_cache_hits() {
        let log = "Sending build context to Docker daemon  40.96kB\r\r\n\
                   Step 1/3 : FROM debian:bookworm-slim\n ---> 9d1415948e8b\n\
                   Step 2/3 : RUN apt-get update\n ---> Using cache\n ---> 1234\n\
                   Step 3/3 : COPY bin/ /opt/disinto/bin/\n ---> 5678\nSuccessfully built 5678\n";
        let steps = parse_build_steps(log);
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[1].instruction, "RUN apt-get update");
        assert_eq!(
            steps.iter().map(|s| s.cached).collect::<Vec<_>>(),
            [false, true, false]
        );
        assert_eq!(parse_context_size(log), Some(40960));
        assert_eq!(
            parse_context_size("Sending build context to Docker daemon  2.1MB\n"),
            Some(2_100_000)
        );
        assert_eq!(parse_context_size("nothing"), None);
    }
}
