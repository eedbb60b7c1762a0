//! `.env` as disinto reads it, against `.env` as Docker Compose reads it: `docker compose
//! config` is the oracle. A table of forms (every one disinto reads, the ones compose refuses,
//! the ones disinto refuses although compose reads them), then random files from a grammar.
//! Needs Docker Compose, so ignored by a plain `cargo test`; `cargo xtask test` runs it, and it
//! fails, never passes, when compose does not answer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use disinto::fsx::TempDir;
use disinto::model::config::{Environment, Settings};

/// What a case expects of the two readers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// The same values, or both refuse the file.
    Same,
    /// Compose reads it (in a surprising way), disinto refuses it with one line.
    Refused,
}

struct Case {
    text: Vec<u8>,
    env: BTreeMap<String, String>,
    /// Keys to compare besides those either reader defines.
    keys: Vec<String>,
    expect: Expect,
}

fn case(expect: Expect, text: &str, env: &[(&str, &str)], keys: &[&str]) -> Case {
    Case {
        text: text.as_bytes().to_vec(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        keys: keys.iter().map(|k| k.to_string()).collect(),
        expect,
    }
}

fn same(text: &str, env: &[(&str, &str)], keys: &[&str]) -> Case {
    case(Expect::Same, text, env, keys)
}

fn refused(text: &str, keys: &[&str]) -> Case {
    case(Expect::Refused, text, &[], keys)
}

/// Variables the docker CLI needs to find itself and its plugins; nothing else of this
/// process's environment reaches compose.
const PASSED: [&str; 5] = [
    "PATH",
    "HOME",
    "DOCKER_CONFIG",
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
];

fn process_env(case_env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = PASSED
        .iter()
        .filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?)))
        .collect();
    env.extend(case_env.clone());
    env
}

type Values = BTreeMap<String, Option<String>>;

/// What `docker compose config` makes of `.env` `text` for `keys`: each key's value in the
/// service environment (`None`: unset), or compose's error about the `.env`.
fn compose(dir: &Path, case: &Case, keys: &BTreeSet<String>) -> Result<Values, String> {
    std::fs::write(dir.join(".env"), &case.text).unwrap();
    let mut yaml = String::from("services:\n  s:\n    image: busybox\n    environment:\n");
    for k in keys {
        // A bare entry takes the key's value from the project environment (.env included).
        yaml.push_str(&format!("      - {}\n", serde_json::to_string(k).unwrap()));
    }
    std::fs::write(dir.join("compose.yml"), yaml).unwrap();
    let out = Command::new("docker")
        .args(["compose", "--project-directory"])
        .arg(dir)
        .arg("--file")
        .arg(dir.join("compose.yml"))
        .args(["config", "--format", "json"])
        .env_clear()
        .envs(process_env(&case.env))
        .output()
        .unwrap_or_else(|e| panic!("docker compose did not answer: cannot run docker: {e}"));
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        // Only an error about the .env is an answer; anything else is a broken bench.
        // (compose 2.26 reports some .env files it cannot load only as "setenv: invalid
        // argument", without naming the file.)
        assert!(
            err.contains(".env") || err == "setenv: invalid argument",
            "docker compose did not answer about the .env: {err}"
        );
        return Err(err);
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("docker compose config printed no JSON ({e})"));
    let environment = &json["services"]["s"]["environment"];
    Ok(keys
        .iter()
        .map(|k| {
            // `config` writes a literal `$` as `$$`, so its output can be read again.
            let v = environment[k].as_str().map(|v| v.replace("$$", "$"));
            (k.clone(), v)
        })
        .collect())
}

/// What disinto makes of the same `.env` and environment, as `Settings` holds it.
fn disinto(case: &Case, origin: &str) -> Result<(Settings, BTreeSet<String>), String> {
    let env = Environment::from(process_env(&case.env));
    let dotenv = env
        .read_dotenv(&case.text, origin)
        .map_err(|e| format!("{e:#}"))?;
    let defined = dotenv.values.keys().cloned().collect();
    Ok((Settings::new(env, dotenv.values), defined))
}

/// How the two readers agreed.
#[derive(Debug, PartialEq)]
enum Agreed {
    Values,
    BothRefuse,
    /// Compose reads it, disinto refuses it (a case marked so).
    Refused,
}

/// Compares the two readers on `case`; the error says how they differ.
fn check(dir: &Path, case: &Case) -> Result<Agreed, String> {
    let origin = dir.join(".env").display().to_string();
    let ours = disinto(case, &origin);
    if let Err(e) = &ours {
        if !e.starts_with(&format!("{origin}:")) || e.contains('\n') {
            return Err(format!("not one line naming file:line: {e}"));
        }
    }
    let mut keys: BTreeSet<String> = case.keys.iter().cloned().collect();
    keys.extend(case.env.keys().cloned());
    if let Ok((_, defined)) = &ours {
        keys.extend(defined.iter().cloned());
    }
    let theirs = compose(dir, case, &keys);
    match (case.expect, ours, theirs) {
        // The error says truly whether compose refuses the file too.
        (Expect::Same, Err(ours), Err(_)) if ours.contains("disinto refuses it") => {
            Err(format!("compose refuses it too, but disinto says: {ours}"))
        }
        (Expect::Same, Err(_), Err(_)) => Ok(Agreed::BothRefuse),
        (Expect::Same, Ok((settings, _)), Ok(theirs)) => {
            let ours: Values = keys
                .iter()
                .map(|k| (k.clone(), settings.get(k).unwrap().map(str::to_string)))
                .collect();
            match ours == theirs {
                true => Ok(Agreed::Values),
                false => Err(format!("disinto {ours:?}\ncompose {theirs:?}")),
            }
        }
        (Expect::Refused, Err(ours), Ok(_)) if !ours.contains("disinto refuses it") => {
            Err(format!("compose reads it, but disinto says: {ours}"))
        }
        (Expect::Refused, Err(_), Ok(_)) => Ok(Agreed::Refused),
        // Refused by disinto because compose versions disagree on it: a compose that refuses
        // it too (2.26 does some that 2.40 reads) agrees with disinto.
        (Expect::Refused, Err(_), Err(_)) => Ok(Agreed::BothRefuse),
        (_, ours, theirs) => Err(format!(
            "disinto {:?}\ncompose {theirs:?}",
            ours.map(|(_, defined)| defined)
        )),
    }
}

fn table() -> Vec<Case> {
    let mut cases = vec![
        // The defects of issue 13: compose's value, not dev mode or ghcr.io.
        same("AGENTS_IMAGE=${PIN:-v0.1.1}\n", &[], &["PIN"]),
        same("AGENTS_IMAGE=${PIN:-v0.1.1}\n", &[("PIN", "v0.2.0")], &[]),
        same(
            "DISINTO_REGISTRY=${REG:-127.0.0.1:5000/disinto}\n",
            &[],
            &[],
        ),
        same("AGENTS_IMAGE=${PIN:?set PIN}\n", &[], &[]),
        same("AGENTS_IMAGE=${PIN?set PIN}\n", &[("PIN", "")], &[]),
        same("X=\nA=${X:?}\n", &[], &[]),
        // Forms compose reads: BOM, `KEY: value`, bare keys, export.
        same("\u{feff}AGENTS_IMAGE=v0.1.1\n", &[], &[]),
        same(
            "KEY: value\nK2 : v2\nK3:\"q\"\nK4 :'s'\nK5:  f:g\nK6:=b\nK7=b=c\n",
            &[],
            &[],
        ),
        same("A\nexport B\nC  \n", &[("A", "a"), ("B", "b")], &["C"]),
        same("A=1\nA\n", &[], &[]),
        // A bare name at the very end, no line break: compose 2.40 reads it, 2.26 fails
        // (setenv: invalid argument). disinto refuses it, which is right for both.
        case(Expect::Refused, "A", &[("A", "proc")], &[]),
        same("A\n", &[("A", "proc")], &[]),
        same(
            "export A=1\nexport\tB=2\nexportC=3\nexport=4\nexport  D = 5\n",
            &[],
            &[],
        ),
        same(
            "-A=1\n.B=2\n]C=3\n_D=4\n9=5\nA[0]=6\n",
            &[],
            &["-A", ".B", "]C", "_D", "9", "A[0]"],
        ),
        same("A=1\nA=2\nA=${A}3\n", &[], &[]),
        // Quotes, comments, escapes.
        same(
            "A='$B \\n # x'\nB=\"x #c\"\t#c\nC='a\\'b'\nD=\"a\\\"b\"\nE=\"x\"#c\nF= 'x'\n",
            &[],
            &[],
        ),
        same(
            "A='multi\nline'\nB=\"two\nlines $A\"\nC=\"a\\\nb\"\n",
            &[],
            &[],
        ),
        same(r#"A="a\tb\nc\rd\x\$e\"f\\g\0101h\a\b\f\v\c""#, &[], &[]),
        same(r#"A="\0377|\012|\0|\00|\0089|\01234|\0400""#, &[], &[]),
        same(r#"A="\0044X|\$X|$\$X|\\$X""#, &[("X", "1")], &[]),
        same(
            "A=a # b # c\nB=a\t# b\nC= # c\nD=#d\nE=x  # c  \nF=  \t \n   # indented\n\t#tab\n",
            &[],
            &[],
        ),
        same(
            "A=\u{a0}x\u{2003}\nB=\u{85}y\nC=  x y  \nD=x 'y'\n",
            &[],
            &[],
        ),
        same("A=b\r\nB=\"c\"\r\nC='d' # c\r\nD\r\n", &[("D", "dd")], &[]),
        same("A=ab\rB=2\n", &[], &["B"]),
        same("A=\\$X\n", &[("X", "1")], &[]),
        // Interpolation: every operator on unset, empty and set.
        same("A=${X:-d}|${X-d}|${X:+a}|${X+a}|$X|${X}\n", &[], &[]),
        same(
            "A=${X:-d}|${X-d}|${X:+a}|${X+a}|$X|${X}\n",
            &[("X", "")],
            &[],
        ),
        same(
            "A=${X:-d}|${X-d}|${X:+a}|${X+a}|$X|${X}\n",
            &[("X", "v")],
            &[],
        ),
        same("A=${X:-${Y:-${Z}}}z\nB=${X-${A}w}\n", &[("Z", "deep")], &[]),
        same("A=${X:-${Y:?boom}}\n", &[("X", "set")], &[]),
        same("A=${X:+${Y:?boom}}\n", &[], &[]),
        same("A=${X:?err ${Y:-dflt}}\n", &[], &[]),
        same("A=${X:-a}b}\nB={${X}}\nC=x}\n", &[("X", "v")], &[]),
        same(
            "A=$\nB=$1 $ x$\nC=${X:-$}|${X:-$1}|${X:-a$}\nD=$$X|$${X}\n",
            &[("X", "1")],
            &[],
        ),
        same("A=f\nB=${A}x\nC=${C}2\n", &[("A", "p"), ("C", "q")], &[]),
        same("A=\"${B}\"\nB=later\n", &[], &[]),
        same("A=${X}\nB\n", &[("X", "$Y"), ("B", "$$")], &[]),
        same("A=${x}|${X}|$A_b1\n", &[("x", "lo"), ("A_b1", "u")], &[]),
        // What compose refuses.
        same("A=${}\n", &[], &[]),
        same("A=${1}\n", &[], &[]),
        same("A=${X:x}\n", &[], &[]),
        same("A=${X\n", &[], &[]),
        same("A=${X:-a #b}\n", &[], &[]),
        same("A=\"${X:-a\nb}\"\n", &[], &[]),
        same("A='x\n", &[], &[]),
        same("A=\"x\\\"\n", &[], &[]),
        same("A B=1\n", &[], &[]),
        same("A$=1\n", &[], &[]),
        same("\"A\"=1\n", &[], &[]),
        same("\u{feff}\u{feff}A=1\n", &[], &[]),
        // What compose reads in a surprising way: refused.
        refused("A='x' B=2\n", &["A", "B"]),
        refused("A=\"b\"x\n", &["A"]),
        refused("A\tB=1\n", &["A"]),
        refused("\u{c4}=1\nB=2\n", &["B"]),
        refused("B=${X:-{a}}\n", &["B"]),
        refused("B=$\u{17f}x\n", &["B"]),
        refused("export\nA=1\n", &["A"]),
        refused("=b\nA=1\n", &["A"]),
        // A NUL byte in a value: compose's setenv refuses the file, whatever the quoting; in a
        // comment, or replaced by a later statement, it is read.
        same("A=a\0b\n", &[], &[]),
        same("B=1\nA='a\0b'\n", &[], &[]),
        same("A=\"a\0b\"\n", &[], &[]),
        same("A=\"x\\0000\"\n", &[], &[]),
        same("A='\0'\nB=${A}\nA=1\n", &[], &[]),
        same("# a\0b\nA=1 #c\0d\nB='x' #\0\n", &[], &[]),
        same("A=a\0b\nA=1\n", &[], &[]),
    ];
    // `${…}` nested as deep as disinto reads, and deeper: compose reads any depth.
    let nested = |depth: usize| {
        let word = format!("{}x{}", "${Y:-".repeat(depth), "}".repeat(depth));
        format!("A={word}\n")
    };
    let deepest = disinto::model::dotenv::MAX_NESTING;
    cases.push(same(&nested(deepest), &[], &[]));
    cases.push(refused(&nested(deepest + 1), &["A"]));
    cases.push(refused(&nested(1000), &["A"]));
    cases.push(Case {
        text: b"A=\xff\n".to_vec(),
        env: BTreeMap::new(),
        keys: vec!["B".into()],
        expect: Expect::Refused,
    });
    cases
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn dotenv_forms_read_as_compose_reads_them() {
    let dir = TempDir::new("dotenv-oracle").unwrap();
    let cases = table();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            check(dir.path(), c)
                .err()
                .map(|why| format!("{:?} {:?}:\n{why}", String::from_utf8_lossy(&c.text), c.env))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from compose:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// A small deterministic generator (xorshift), so a failing seed can be run again.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn words(&mut self, items: &[&str], most: usize) -> String {
        (0..self.below(most + 1))
            .map(|_| self.pick(items))
            .collect()
    }
}

const KEYS: [&str; 5] = ["A", "B", "C", "X", "AGENTS_IMAGE"];

/// Pieces of values: every form the reader knows, none that it refuses while compose reads it.
const PLAIN: [&str; 32] = [
    "a",
    "v0.1.1",
    "-",
    ".",
    "/",
    ":",
    "=",
    " ",
    "  ",
    "\t",
    "#",
    " #c",
    "\\",
    "\\n",
    "$$",
    "$A",
    "$X",
    "${A}",
    "${X}",
    "${X:-d}",
    "${X-d}",
    "${X:+alt}",
    "${X+alt}",
    "${EMPTY:-e}",
    "${X:-${A:-n}}",
    "$",
    "$1",
    "}",
    "é",
    "\u{a0}",
    "${B:?need B}",
    "'",
];
const QUOTED: [&str; 20] = [
    "a",
    " ",
    "#",
    " #c",
    "$A",
    "${X:-d}",
    "${X-${A}}",
    "\\\\",
    "\\t",
    "\\n",
    "\\$",
    "$$",
    "\n",
    "é",
    "\\0101",
    "\\0044X",
    "}",
    "\\c",
    "'",
    "\"",
];

/// One random `.env` line (or a few, for quoted values that span lines).
fn line(rng: &mut Rng) -> String {
    let kind = rng.below(10);
    if kind == 0 {
        return rng
            .pick(&["", "# comment", "   # indented", "\t"])
            .to_string();
    }
    let indent = rng.pick(&["", "", " ", "\t"]);
    let export = if rng.chance(5) { "export " } else { "" };
    let key = rng.pick(&KEYS);
    if kind == 1 {
        return format!("{indent}{export}{key}{}", rng.pick(&["", " "]));
    }
    let sep = rng.pick(&["=", "=", "=", " = ", ":", ": "]);
    let value = match rng.below(3) {
        0 => {
            let v = rng.words(&PLAIN, 5);
            // A value that starts with a quote is a quoted value: kept for the quoted arms.
            match v
                .trim_start_matches([' ', '\t', '\u{a0}'])
                .starts_with(['\'', '"'])
            {
                true => format!("x{v}"),
                false => v,
            }
        }
        1 => {
            let v: String = rng.words(&QUOTED, 5).replace('\'', "\\'");
            format!("'{}'", v.trim_end_matches('\\'))
        }
        _ => {
            let v: String = rng.words(&QUOTED, 5).replace('"', "\\\"");
            format!("\"{v}\"")
        }
    };
    let comment = match value.starts_with(['\'', '"']) && rng.chance(3) {
        true => rng.pick(&[" # c", "\t#c", "#c"]),
        false => "",
    };
    format!("{indent}{export}{key}{sep}{value}{comment}")
}

fn random_case(rng: &mut Rng) -> Case {
    let ending = if rng.chance(4) { "\r\n" } else { "\n" };
    let mut text = String::new();
    if rng.chance(8) {
        text.push('\u{feff}');
    }
    for _ in 0..1 + rng.below(6) {
        text.push_str(&line(rng));
        text.push_str(ending);
    }
    if rng.chance(4) {
        text.truncate(text.len() - ending.len());
    }
    let mut env = BTreeMap::new();
    for key in ["A", "B", "X", "EMPTY"] {
        if rng.chance(3) {
            let value = rng.pick(&["p", "", "v 1", "$Q", "a#b"]);
            env.insert(key.to_string(), value.to_string());
        }
    }
    Case {
        text: text.into_bytes(),
        env,
        keys: KEYS.iter().map(|k| k.to_string()).collect(),
        expect: Expect::Same,
    }
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn random_dotenv_files_read_as_compose_reads_them() {
    // DOTENV_ORACLE_SEED runs another set (or a failing one again).
    let seed = std::env::var("DOTENV_ORACLE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00d0_7e4f);
    let dir = TempDir::new("dotenv-oracle").unwrap();
    let mut rng = Rng(seed);
    let mut values = 0;
    for i in 0..CASES {
        let case = random_case(&mut rng);
        match check(dir.path(), &case) {
            Ok(agreed) => values += usize::from(agreed == Agreed::Values),
            Err(why) => panic!(
                "seed {seed}, case {i}: {:?} {:?}:\n{why}",
                String::from_utf8_lossy(&case.text),
                case.env
            ),
        }
    }
    // Files both readers refuse agree too, but say little: most must have values.
    assert!(
        values * 2 > CASES,
        "seed {seed}: only {values} of {CASES} files had values"
    );
}

/// Random files per run: each is one `docker compose config` (about 0.15 s).
const CASES: usize = 64;

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn set_in_dotenv_writes_what_compose_reads() {
    let dir = TempDir::new("dotenv-oracle").unwrap();
    for text in [
        "",
        "X=1",
        "K: old # c\r\nX=1\r\n",
        "\u{feff}K=a\nK='multi\nline' # c\nX=${K}\n",
        "X=1\nK  \n",
        "export K = \"x\" # pinned\nK2=2\n",
        "K=${PIN:-v0.1.0}\n",
    ] {
        for value in ["v0.1.1", "ghcr.io/x/agents:v1@sha256:ab", "it's $HOME #1"] {
            let new = disinto::model::config::set_in_dotenv(text, "K", value).unwrap();
            let case = same(&new, &[], &["K"]);
            let values = match check(dir.path(), &case) {
                Ok(Agreed::Values) => disinto(&case, "f").unwrap().0,
                other => panic!("{text:?} with K={value:?}: {new:?}: {other:?}"),
            };
            assert_eq!(values.get("K").unwrap(), Some(value), "{new:?}");
        }
    }
}
