//! The `depends_on` of a project's services as compose reads them (`config`), for containers
//! that carry no `com.docker.compose.depends_on` label (deployed by compose v1).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::order::{Condition, ServiceDeps};

#[derive(Debug, Deserialize)]
struct Model {
    #[serde(default)]
    services: BTreeMap<String, Service>,
}

#[derive(Debug, Deserialize)]
struct Service {
    #[serde(default)]
    depends_on: Option<DependsOn>,
}

/// Both forms compose accepts (and prints): a list of names, or a map with conditions.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum DependsOn {
    List(Vec<String>),
    Map(BTreeMap<String, Dependency>),
}

#[derive(Debug, Deserialize)]
struct Dependency {
    #[serde(default)]
    condition: Option<String>,
}

/// Parses the output of `compose config` (YAML; JSON is YAML too): each service's
/// dependencies.
pub(crate) fn parse(text: &str) -> Result<BTreeMap<String, ServiceDeps>, String> {
    let model: Model = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    Ok(model
        .services
        .into_iter()
        .map(|(name, service)| {
            let deps = match service.depends_on {
                None => ServiceDeps::new(),
                Some(DependsOn::List(names)) => {
                    names.into_iter().map(|n| (n, Condition::Started)).collect()
                }
                Some(DependsOn::Map(map)) => map
                    .into_iter()
                    .map(|(n, d)| {
                        let label = format!("{n}:{}", d.condition.unwrap_or_default());
                        let condition = crate::order::parse_depends_on(&label)
                            .remove(&n)
                            .unwrap_or(Condition::Started);
                        (n, condition)
                    })
                    .collect(),
            };
            (name, deps)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_and_their_conditions_are_read() {
        let yaml = "\
services:
  db:
    image: postgres
  init:
    image: x
  web:
    depends_on:
      db:
        condition: service_healthy
      init:
        condition: service_completed_successfully
  worker:
    depends_on: [db]
version: '2.4'
";
        let model = parse(yaml).expect("valid");
        assert!(model["db"].is_empty());
        assert_eq!(model["web"]["db"], Condition::Healthy);
        assert_eq!(model["web"]["init"], Condition::Completed);
        assert_eq!(model["worker"]["db"], Condition::Started);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse("services: [").is_err());
    }
}
