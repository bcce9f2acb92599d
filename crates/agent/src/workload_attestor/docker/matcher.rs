//! SPIRE's legacy `container_id_cgroup_matchers`: `/`-separated patterns where `*` matches one whole
//! segment and `<id>` captures one as the container ID (`/docker/<id>`, `/my.slice/*/<id>/*`).
//! Patterns that could match the same path are refused, as in SPIRE.

use std::collections::BTreeSet;

const WILDCARD: &str = "*";
const ID: &str = "<id>";

/// Compiled patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerIdFinder {
    patterns: Vec<Vec<String>>,
}

impl ContainerIdFinder {
    /// Compiles `patterns`; messages are SPIRE's.
    pub fn new(patterns: &[String]) -> Result<Self, String> {
        if patterns.is_empty() {
            return Err("dockerfinder: at least 1 pattern must be supplied".into());
        }
        let mut ambiguous = BTreeSet::new();
        for (i, a) in patterns.iter().enumerate() {
            for b in &patterns[i + 1..] {
                if equivalent(a, b) {
                    ambiguous.insert(a.as_str());
                    ambiguous.insert(b.as_str());
                }
            }
        }
        if !ambiguous.is_empty() {
            let quoted: Vec<String> = ambiguous.iter().map(|p| format!("{p:?}")).collect();
            return Err(format!("dockerfinder: patterns must not be ambiguous: [{}]", quoted.join(" ")));
        }
        let mut compiled = Vec::new();
        for pattern in patterns {
            let segments: Vec<String> = pattern.split('/').map(str::to_owned).collect();
            if segments.iter().filter(|s| *s == ID).count() != 1 {
                return Err(format!("pattern {pattern:?} must contain the container id token \"<id>\" exactly once"));
            }
            compiled.push(segments);
        }
        Ok(Self { patterns: compiled })
    }

    /// The container ID of the first pattern matching the whole `cgroup` path.
    pub fn find(&self, cgroup: &str) -> Option<String> {
        let segments: Vec<&str> = cgroup.split('/').collect();
        self.patterns.iter().find_map(|pattern| {
            if pattern.len() != segments.len() {
                return None;
            }
            let mut id = None;
            for (p, s) in pattern.iter().zip(&segments) {
                match p.as_str() {
                    WILDCARD => {}
                    ID => id = Some((*s).to_owned()),
                    literal if literal == *s => {}
                    _ => return None,
                }
            }
            id
        })
    }

    /// SPIRE's `getContainerIDFromCGroups`: the one container ID the paths agree on, `""` if none
    /// matches; an error if two differ or a match is empty.
    pub fn container_id<'a>(&self, paths: impl IntoIterator<Item = &'a str>) -> Result<String, String> {
        let mut found: Option<String> = None;
        for path in paths {
            let Some(candidate) = self.find(path) else { continue };
            match &found {
                None => found = Some(candidate),
                Some(known) if *known != candidate => {
                    return Err(format!(
                        "workloadattestor/docker: multiple container IDs found in cgroups ({known}, {candidate})"
                    ));
                }
                Some(_) => {}
            }
        }
        match found {
            Some(id) if id.is_empty() => {
                Err("workloadattestor/docker: a pattern matched, but no container id was found".into())
            }
            Some(id) => Ok(id),
            None => Ok(String::new()),
        }
    }
}

fn equivalent(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('/').collect(), b.split('/').collect());
    a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x == y || [*x, *y].iter().any(|s| *s == WILDCARD || *s == ID))
}
