//! `berth advisories import` and `berth scan show`: loading OSV advisories into a running registry, and reading an
//! image's vulnerability findings from it.

use std::error::Error;
use std::path::{Path, PathBuf};

use berth::{
    http::scans::NDJSON,
    oci::{Reference, RepositoryName},
    scan::Severity,
    store::scanning::Finding,
};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::access::Target;
use crate::client::SeverityCounts;
use crate::output::{Table, emit};
use crate::reference::{ImageRef, parse_image};

#[derive(Args)]
pub struct AdvisoriesArgs {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: AdvisoriesCommand,
}

#[derive(Subcommand)]
enum AdvisoriesCommand {
    /// Load OSV advisories (a folder of OSV JSON files, searched recursively, or a zip of them) as the registry's
    /// new advisory snapshot; every image already scanned is re-evaluated against it.
    Import {
        /// The folder or zip of `*.json` OSV records.
        #[arg(value_name = "PATH")]
        path: PathBuf,
    },
}

#[derive(Args)]
pub struct ScanArgs {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: ScanCommand,
}

#[derive(Subcommand)]
enum ScanCommand {
    /// Show an image's vulnerability findings, most severe first.
    Show {
        /// The image, by tag (team/app:v1) or digest (team/app@sha256:...).
        #[arg(value_name = "NAME:TAG|NAME@DIGEST", value_parser = parse_scanned_image)]
        image: (RepositoryName, Reference),
        /// Only findings at least this severe: critical, high, medium, low or unknown (all). The summary still
        /// counts every finding of the image.
        #[arg(long, value_name = "LEVEL", value_parser = parse_severity)]
        severity: Option<Severity>,
    },
}

fn parse_scanned_image(text: &str) -> Result<(RepositoryName, Reference), String> {
    match parse_image(text)? {
        ImageRef { name, reference: Some(reference) } => Ok((name, reference)),
        ImageRef { .. } => Err(format!("{text}: expected NAME:TAG or NAME@DIGEST")),
    }
}

fn parse_severity(text: &str) -> Result<Severity, String> {
    text.parse().map_err(|error: berth::scan::UnknownSeverity| error.to_string())
}

/// A scan report as the registry sends it; printed as JSON it keeps the API's fields.
#[derive(Deserialize, Serialize)]
struct Report {
    image: String,
    status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    scanned_at: Option<String>,
    snapshot: Option<Snapshot>,
    summary: Summary,
    findings: Vec<Finding>,
}

#[derive(Deserialize, Serialize)]
struct Snapshot {
    id: String,
    imported_at: String,
}

#[derive(Deserialize, Serialize)]
struct Summary {
    total: u64,
    #[serde(flatten)]
    counts: SeverityCounts,
}

pub async fn advisories(args: AdvisoriesArgs) -> Result<(), Box<dyn Error>> {
    let client = args.target.client();
    let AdvisoriesCommand::Import { path } = args.command;
    // One record per line, streamed: an export of any size goes in one import without being held in memory.
    let records = tempfile::NamedTempFile::new().map_err(|error| format!("cannot make a temporary file: {error}"))?;
    let mut lines = std::io::BufWriter::new(records.as_file());
    each_advisory(&path, |name, bytes| {
        let record = parse_record(&bytes, name)?;
        serde_json::to_writer(&mut lines, &record)?;
        Ok(std::io::Write::write_all(&mut lines, b"\n")?)
    })?;
    std::io::Write::flush(&mut lines)?;
    drop(lines);
    let imported = client.manage_file(Method::POST, "/berth/v1/advisories", NDJSON, records.path()).await?;
    emit(args.target.output, &imported, |imported| {
        format!("Imported {} advisories as snapshot {}", imported["imported"], imported["snapshot"]["id"].as_str().unwrap_or_default())
    })?;
    Ok(())
}

/// Hands `visit` every OSV record at `path`, as (name, bytes): every `*.json` file under a folder (searched
/// recursively, in path order) or in a zip (as OSV's exports are, in archive order), each one record.
fn each_advisory(path: &Path, mut visit: impl FnMut(&str, Vec<u8>) -> Result<(), Box<dyn Error>>) -> Result<(), Box<dyn Error>> {
    if path.is_dir() {
        for file in json_files(path)? {
            let bytes = std::fs::read(&file).map_err(|error| format!("cannot read {}: {error}", file.display()))?;
            visit(&file.display().to_string(), bytes)?;
        }
        return Ok(());
    }
    let file = std::fs::File::open(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    scanner::osv_archive::each_json_file(std::io::BufReader::new(file), |name, bytes| visit(&format!("{}: {name}", path.display()), bytes))
        .map_err(|error| format!("{}: {error}", path.display()))?;
    Ok(())
}

fn parse_record(bytes: &[u8], name: &str) -> Result<serde_json::Value, Box<dyn Error>> {
    serde_json::from_slice(bytes).map_err(|error| format!("{name} is not JSON: {error}").into())
}

/// Every `*.json` file under `folder`, in path order.
fn json_files(folder: &Path) -> Result<Vec<PathBuf>, Box<dyn Error>> {
    let mut files = Vec::new();
    let mut folders = vec![folder.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).map_err(|error| format!("cannot read {}: {error}", folder.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|extension| extension == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

pub async fn scan(args: ScanArgs) -> Result<(), Box<dyn Error>> {
    let client = args.target.client();
    let ScanCommand::Show { image: (name, reference), severity } = args.command;
    let answer = client.manage(Method::GET, &format!("/berth/v1/repositories/{name}/scans/{reference}"), &[], None).await?;
    let mut report: Report = serde_json::from_value(answer).map_err(|error| format!("unexpected scan report: {error}"))?;
    report.findings.retain(|finding| severity.is_none_or(|least| finding.severity >= least));
    // Most severe first; the registry orders by package, which is how a report of one severity reads best.
    report.findings.sort_by_key(|finding| std::cmp::Reverse(finding.severity));
    emit(args.target.output, &report, findings_table)?;
    Ok(())
}

fn findings_table(report: &Report) -> String {
    let (total, SeverityCounts { critical, high, medium, low, unknown }) = (report.summary.total, report.summary.counts);
    let when = match (&report.scanned_at, &report.snapshot) {
        (Some(at), Some(snapshot)) => format!("scanned {at} against advisories {} ({})", snapshot.id, snapshot.imported_at),
        (Some(at), None) => format!("scanned {at}, before any advisories were imported"),
        _ => "not scanned yet".to_owned(),
    };
    let mut text = format!(
        "{}: {} ({when})\n{total} findings: {critical} critical, {high} high, {medium} medium, {low} low, {unknown} unknown\n",
        report.image, report.status
    );
    if let Some(error) = &report.error {
        text.push_str(&format!("error: {error}\n"));
    }
    let mut table = Table::new(vec!["SEVERITY", "ID", "PACKAGE", "INSTALLED", "FIXED", "ALIASES", "REMEDIATION"]);
    for finding in &report.findings {
        table.row(vec![
            finding.severity.to_string(),
            finding.id.clone(),
            finding.package.clone(),
            finding.installed.clone(),
            finding.fixed.clone().unwrap_or_else(|| "no fix".to_owned()),
            finding.aliases.join(", "),
            finding.remediation.clone(),
        ]);
    }
    text.push_str(&table.render());
    text
}
