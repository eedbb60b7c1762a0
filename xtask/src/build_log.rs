//! Readers of a `docker build` log, from BuildKit (`--progress=plain`) or the classic builder:
//! which steps came from the cache, and how big the context was. The tests and the benchmark
//! use them to prove layer reuse.

/// One step of a `docker build` log, and whether it came from the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildStep {
    pub instruction: String,
    pub cached: bool,
}

/// Parses a build log of either builder: the classic one (`Step N/M : INSTRUCTION`, then
/// ` ---> Using cache`) or BuildKit's `--progress=plain` (`#N [i/n] INSTRUCTION`, then
/// `#N CACHED`), in the order the steps appear.
pub fn parse_build_steps(log: &str) -> Vec<BuildStep> {
    let mut steps: Vec<BuildStep> = Vec::new();
    // BuildKit: vertex number → index in `steps`.
    let mut vertices: Vec<(String, usize)> = Vec::new();
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
        } else if let Some((vertex, rest)) = line.strip_prefix('#').and_then(|l| l.split_once(' '))
        {
            if rest.trim() == "CACHED" {
                if let Some((_, i)) = vertices.iter().find(|(v, _)| v == vertex) {
                    steps[*i].cached = true;
                }
            } else if let Some(instruction) = buildkit_step(rest) {
                if !vertices.iter().any(|(v, _)| v == vertex) {
                    vertices.push((vertex.to_string(), steps.len()));
                    steps.push(BuildStep {
                        instruction: instruction.to_string(),
                        cached: false,
                    });
                }
            }
        }
    }
    steps
}

/// The instruction of a BuildKit step header: `[2/9] RUN …` or `[stage 2/9] RUN …` (not
/// `[internal] …`, which is BuildKit's own work).
fn buildkit_step(rest: &str) -> Option<&str> {
    let (label, instruction) = rest.strip_prefix('[')?.split_once("] ")?;
    let counter = label.rsplit(' ').next()?;
    let (i, n) = counter.split_once('/')?;
    (i.parse::<u32>().is_ok() && n.parse::<u32>().is_ok()).then_some(instruction.trim())
}

/// The context size a build reports, in bytes: the classic builder's "Sending build context
/// to Docker daemon 12.3kB", or BuildKit's "#N transferring context: 12.3kB done".
pub fn parse_context_size(log: &str) -> Option<u64> {
    let value = log.lines().find_map(|l| {
        l.strip_prefix("Sending build context to Docker daemon")
            .or_else(|| l.split_once("transferring context: ").map(|(_, v)| v))
    })?;
    let value = value.trim().trim_end_matches(" done").trim();
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

    #[test]
    fn buildkit_plain_progress_steps_and_cache_hits() {
        let log = "#0 building with \"default\" instance using docker driver\n\
                   #1 [internal] load build definition from Dockerfile\n#1 DONE 0.0s\n\
                   #5 [internal] load build context\n#5 transferring context: 19.46kB done\n#5 DONE 0.0s\n\
                   #6 [2/4] RUN apt-get update\n#6 CACHED\n\
                   #7 [base 3/4] RUN groupadd agent\n#7 CACHED\n\
                   #8 [4/4] COPY bin/ /opt/disinto/bin/\n#8 DONE 0.1s\n";
        let steps = parse_build_steps(log);
        let got: Vec<(&str, bool)> = steps
            .iter()
            .map(|s| (s.instruction.as_str(), s.cached))
            .collect();
        assert_eq!(
            got,
            [
                ("RUN apt-get update", true),
                ("RUN groupadd agent", true),
                ("COPY bin/ /opt/disinto/bin/", false)
            ]
        );
        assert_eq!(parse_context_size(log), Some(19460));
    }
}
