//! The release formula (`formulas/release.toml`): parsed, and held to the implemented steps.
//! The file is the source of truth for order; the code must implement exactly its steps.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::release::step::Step;
use disinto::model::platform::Platform;

/// The formula as the file spells it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct FormulaFile {
    name: String,
    #[serde(default)]
    description: String,
    /// The platforms every image is built for, unless DISINTO_PLATFORMS says otherwise.
    #[serde(default)]
    platforms: Option<Vec<String>>,
    steps: Vec<StepFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    id: String,
    title: String,
    description: String,
}

/// The formula, validated: exactly the implemented steps, in release order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formula {
    pub name: String,
    pub description: String,
    /// `platforms = [...]`, parsed; none when the formula names none.
    pub platforms: Option<Vec<Platform>>,
    pub steps: Vec<FormulaStep>,
}

/// One step of the formula: the step it names, and the words a person follows by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormulaStep {
    pub step: Step,
    pub title: String,
    pub description: String,
}

impl Formula {
    /// Parses and validates; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Formula> {
        let file: FormulaFile = toml::from_str(text).map_err(|e| {
            // toml's messages can span lines; an error here is one line.
            let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            match line {
                Some(line) => anyhow::anyhow!("{origin}:{line}: {message}"),
                None => anyhow::anyhow!("{origin}: {message}"),
            }
        })?;
        validate(&file)
            .with_context(|| format!("{origin} does not match the release implementation"))?;
        let platforms = match &file.platforms {
            None => None,
            Some(list) => Some(
                Platform::parse_list(&list.join(","))
                    .map_err(|e| anyhow::anyhow!("{origin}: platforms: {e:#}"))?,
            ),
        };
        Ok(Formula {
            name: file.name,
            description: file.description,
            platforms,
            steps: file
                .steps
                .into_iter()
                .zip(Step::ALL)
                .map(|(s, step)| FormulaStep {
                    step,
                    title: s.title,
                    description: s.description,
                })
                .collect(),
        })
    }

    pub fn load(path: &Path) -> Result<Formula> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the release formula {}", path.display()))?;
        Formula::parse(&text, &path.display().to_string())
    }

    pub fn ids(&self) -> Vec<&str> {
        self.steps.iter().map(|s| s.step.id()).collect()
    }
}

/// The file names exactly the implemented steps ([`Step::ALL`]), in order, each described.
fn validate(file: &FormulaFile) -> Result<()> {
    let mut seen = BTreeSet::new();
    for step in &file.steps {
        if !seen.insert(step.id.as_str()) {
            bail!("step id {:?} appears twice", step.id);
        }
        if Step::from_id(&step.id).is_none() {
            bail!(
                "step {:?} has no implementation (known steps: {})",
                step.id,
                Step::ids()
            );
        }
        if step.title.trim().is_empty() || step.description.trim().is_empty() {
            bail!("step {:?} needs a title and a description", step.id);
        }
    }
    if let Some(missing) = Step::ALL.iter().find(|s| !seen.contains(s.id())) {
        bail!(
            "implemented step {:?} is missing from the formula",
            missing.id()
        );
    }
    let ids: Vec<&str> = file.steps.iter().map(|s| s.id.as_str()).collect();
    if ids != Step::ALL.map(Step::id) {
        bail!(
            "steps are out of order: {} (expected {})",
            ids.join(" → "),
            Step::ALL.map(Step::id).join(" → ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> String {
        std::fs::read_to_string(crate::project_root().join(crate::FORMULA)).unwrap()
    }

    fn err(text: &str) -> String {
        format!("{:#}", Formula::parse(text, "release.toml").unwrap_err())
    }

    #[test]
    fn the_committed_formula_matches_the_implementation() {
        let formula = Formula::parse(&file(), "formulas/release.toml").unwrap();
        assert_eq!(formula.ids(), Step::ALL.map(Step::id));
        assert_eq!(formula.name, "release");
        let platforms: Vec<String> = formula
            .platforms
            .unwrap()
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
        assert_eq!(
            platforms.join(","),
            disinto::model::platform::DEFAULT_PLATFORMS
        );
    }

    #[test]
    fn a_bad_platform_names_the_file_and_the_platform() {
        let text = file().replace("\"linux/arm64\"", "\"linux-arm64\"");
        let e = err(&text);
        assert!(
            e.starts_with("release.toml: platforms: platform \"linux-arm64\" is not os/arch"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1, "{e}");
    }

    #[test]
    fn unknown_step_is_refused() {
        let text = file().replace("id = \"push-mirrors\"", "id = \"push-mirror\"");
        let e = err(&text);
        assert!(
            e.contains("step \"push-mirror\" has no implementation"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1, "{e}");
    }

    #[test]
    fn duplicate_id_is_refused() {
        let text = file().replace("id = \"push-mirrors\"", "id = \"tag-main\"");
        assert!(err(&text).contains("step id \"tag-main\" appears twice"));
    }

    #[test]
    fn missing_step_is_refused() {
        let text = file();
        let start = text.find("[[steps]]\nid = \"push-image\"").unwrap();
        let end = text[start + 1..].find("[[steps]]").unwrap() + start + 1;
        let text = format!("{}{}", &text[..start], &text[end..]);
        assert!(
            err(&text).contains("step \"push-image\" is missing"),
            "{}",
            err(&text)
        );
    }

    #[test]
    fn order_is_enforced() {
        let text = file()
            .replace("id = \"tag-image\"", "id = \"TMP\"")
            .replace("id = \"build-image\"", "id = \"tag-image\"")
            .replace("id = \"TMP\"", "id = \"build-image\"");
        assert!(err(&text).contains("out of order"), "{}", err(&text));
    }

    #[test]
    fn bad_toml_and_unknown_fields_name_the_line() {
        let e = err("name = \"release\"\n[[steps]\n");
        assert!(e.starts_with("release.toml:2:"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
        let e = err("name = \"release\"\nsteps = []\ncolour = 1\n");
        assert!(e.contains("unknown field `colour`"), "{e}");
        let e = err("name = \"release\"\n[[steps]]\nid = \"preflight\"\n");
        assert!(e.contains("missing field `title`"), "{e}");
    }
}
