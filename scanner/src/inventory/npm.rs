//! npm packages: `package-lock.json` (v2 and v3 `packages`, v1 `dependencies`) and the `package.json` of each
//! installed package under `node_modules`. Each package is located at its `node_modules` directory, so a lockfile
//! entry and the installed package it describes are one package.

use serde_json::{Map, Value};

use super::{PackageFormat, PackageRecord};

/// Whether `directory` is a package's own directory: `…/node_modules/NAME` or `…/node_modules/@SCOPE/NAME`.
pub(super) fn is_package_directory(directory: &str) -> bool {
    let mut components = directory.rsplit('/');
    let (Some(name), Some(parent)) = (components.next(), components.next()) else { return false };
    if name.starts_with('.') {
        return false;
    }
    parent == "node_modules" || (parent.starts_with('@') && components.next() == Some("node_modules"))
}

pub(super) fn parse_lockfile(path: &str, text: &str) -> Result<Vec<PackageRecord>, String> {
    let lockfile: Value = serde_json::from_str(text).map_err(|error| format!("not a JSON lockfile: {error}"))?;
    let project = path.rsplit_once('/').map_or("", |(directory, _)| directory);
    let mut packages = Vec::new();
    if let Some(entries) = lockfile["packages"].as_object() {
        for (key, entry) in entries {
            // "" is the project itself, and keys outside node_modules are workspace members; links have no version.
            let Some((_, installed_name)) = key.rsplit_once("node_modules/") else { continue };
            if entry["link"].as_bool() == Some(true) {
                continue;
            }
            let name = entry["name"].as_str().unwrap_or(installed_name);
            if let Some(version) = entry["version"].as_str() {
                packages.push(located(name, version, join(project, key)));
            }
        }
    } else if let Some(dependencies) = lockfile["dependencies"].as_object() {
        add_v1_dependencies(&mut packages, &join(project, "node_modules"), dependencies);
    }
    Ok(packages)
}

/// Lockfile v1 nests each package's own `dependencies` under it, installed in its own `node_modules`.
fn add_v1_dependencies(packages: &mut Vec<PackageRecord>, node_modules: &str, dependencies: &Map<String, Value>) {
    for (name, entry) in dependencies {
        let location = format!("{node_modules}/{name}");
        if let Some(version) = entry["version"].as_str() {
            packages.push(located(name, version, location.clone()));
        }
        if let Some(nested) = entry["dependencies"].as_object() {
            add_v1_dependencies(packages, &format!("{location}/node_modules"), nested);
        }
    }
}

pub(super) fn parse_package_json(path: &str, text: &str) -> Result<Option<PackageRecord>, String> {
    let manifest: Value = serde_json::from_str(text).map_err(|error| format!("not a JSON package.json: {error}"))?;
    let directory = path.rsplit_once('/').map_or("", |(directory, _)| directory);
    Ok(match (manifest["name"].as_str(), manifest["version"].as_str()) {
        (Some(name), Some(version)) => Some(located(name, version, directory.to_owned())),
        _ => None,
    })
}

fn located(name: &str, version: &str, location: String) -> PackageRecord {
    PackageRecord { location: Some(location), ..PackageRecord::new(PackageFormat::Npm, name, version) }
}

fn join(directory: &str, name: &str) -> String {
    if directory.is_empty() { name.to_owned() } else { format!("{directory}/{name}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(packages: &[PackageRecord]) -> Vec<(&str, &str, &str)> {
        packages.iter().map(|package| (package.name.as_str(), package.version.as_str(), package.location.as_deref().unwrap())).collect()
    }

    #[test]
    fn the_fixture_lockfile_v3_lists_its_16_packages_at_their_directories() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vulndata/inventories/package-lock.json")).unwrap();
        let packages = parse_lockfile("app/package-lock.json", &text).unwrap();
        assert_eq!(packages.len(), 16);
        let summary = summary(&packages);
        assert!(summary.contains(&("express", "4.18.2", "app/node_modules/express")));
        assert!(summary.contains(&("lodash", "4.17.20", "app/node_modules/lodash")));
        assert!(!summary.iter().any(|(name, ..)| *name == "vulndata-fixture"), "the project itself is not a dependency");
    }

    #[test]
    fn nested_scoped_aliased_and_linked_entries_of_v2() {
        let text = r#"{"lockfileVersion": 2, "packages": {
            "": {"name": "app", "version": "1.0.0"},
            "node_modules/@types/node": {"version": "20.1.0"},
            "node_modules/a/node_modules/qs": {"version": "6.5.0"},
            "node_modules/alias": {"name": "real-name", "version": "2.0.0"},
            "node_modules/local": {"link": true, "resolved": "packages/local"},
            "packages/local": {"name": "local", "version": "0.1.0"}
        }, "dependencies": {"ignored": {"version": "9.9.9"}}}"#;
        let packages = parse_lockfile("package-lock.json", text).unwrap();
        assert_eq!(
            summary(&packages),
            [
                ("@types/node", "20.1.0", "node_modules/@types/node"),
                ("qs", "6.5.0", "node_modules/a/node_modules/qs"),
                ("real-name", "2.0.0", "node_modules/alias"),
            ]
        );
    }

    #[test]
    fn v1_dependencies_nest() {
        let text = r#"{"lockfileVersion": 1, "dependencies": {
            "a": {"version": "1.0.0", "dependencies": {"b": {"version": "2.0.0"}}}
        }}"#;
        let packages = parse_lockfile("srv/package-lock.json", text).unwrap();
        assert_eq!(summary(&packages), [("a", "1.0.0", "srv/node_modules/a"), ("b", "2.0.0", "srv/node_modules/a/node_modules/b")]);
    }

    #[test]
    fn package_json_of_installed_packages() {
        assert!(is_package_directory("app/node_modules/express"));
        assert!(is_package_directory("node_modules/@types/node"));
        assert!(!is_package_directory("app/node_modules/express/lib"));
        assert!(!is_package_directory("app/node_modules/.bin"));
        assert!(!is_package_directory("app"));
        let package = parse_package_json("app/node_modules/ws/package.json", r#"{"name": "ws", "version": "8.13.0"}"#).unwrap();
        assert_eq!(summary(&[package.unwrap()]), [("ws", "8.13.0", "app/node_modules/ws")]);
        assert!(parse_package_json("x/package.json", "{").is_err());
    }
}
