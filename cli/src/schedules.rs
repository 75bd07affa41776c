//! `sluice schedules`: the EventBridge rules that run each export in AWS, written from the
//! config so the schedules live in one place (each export's `schedule` and `state`). Prints the
//! section of template.yaml between its `# BEGIN sluice schedules` and `# END sluice schedules`
//! lines, rewrites that section in place with `--write`, or prints JSON for the CDK app
//! (`npx cdk deploy -c schedules=FILE`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use sluice_core::spec::{Config, ExportSpec, ExportState};

use crate::commands::Usage;

#[derive(clap::Args, Debug)]
pub struct SchedulesArgs {
    /// Rewrite the schedules section of this SAM template (the lines between
    /// `# BEGIN sluice schedules` and `# END sluice schedules`) instead of printing it.
    #[arg(long, value_name = "TEMPLATE")]
    pub write: Option<PathBuf>,
}

const BEGIN: &str = "# BEGIN sluice schedules";
const END: &str = "# END sluice schedules";

/// One export's rule.
#[derive(Debug, PartialEq)]
pub struct Schedule<'a> {
    /// The rule's logical ID in the template: `Schedule` + the export's name in CamelCase.
    pub id: String,
    pub export: &'a str,
    /// None: the stack's `ExportSchedule` parameter.
    pub expression: Option<&'a str>,
    /// A paused export's rule is deployed disabled; others follow `ScheduleState`.
    pub paused: bool,
}

/// The exports the export function can run on a schedule, and notes on the others (left out)
/// and on those that run on the stack's `ExportSchedule`; or, first, every export whose
/// `schedule` EventBridge would refuse.
pub fn plan(config: &Config) -> Result<(Vec<Schedule<'_>>, Vec<String>), Vec<String>> {
    let invalid: Vec<String> = config
        .exports
        .iter()
        .filter_map(|e| {
            let why = sluice_core::schedule::check(e.schedule.as_deref()?).err()?;
            Some(format!("export {:?}: schedule {why}", e.name))
        })
        .collect();
    if !invalid.is_empty() {
        return Err(invalid);
    }
    let mut schedules: Vec<Schedule> = Vec::new();
    let mut notes = Vec::new();
    let mut taken = std::collections::BTreeSet::new();
    for e in &config.exports {
        if let Some(why) = unschedulable(e) {
            // Its `schedule` may well be set: what is missing is a rule the stack can run.
            notes.push(format!("export {:?} gets no rule in the stack: {why}", e.name));
            continue;
        }
        if e.schedule.is_none() {
            notes.push(format!(
                "export {:?} has no `schedule`: it runs on the stack's ExportSchedule parameter (every 15 minutes by default)",
                e.name
            ));
        }
        // `a_b` and `a__b` share one CamelCase, and `a_permission`'s rule is `a`'s permission's
        // name: number the later one until both of its IDs are free.
        let base = format!("Schedule{}", camel(&e.name));
        let mut id = base.clone();
        let mut n = 2;
        while taken.contains(&id) || taken.contains(&format!("{id}Permission")) {
            id = format!("{base}{n}");
            n += 1;
        }
        taken.insert(id.clone());
        taken.insert(format!("{id}Permission"));
        schedules.push(Schedule {
            id,
            export: &e.name,
            expression: e.schedule.as_deref(),
            paused: e.state == ExportState::Paused,
        });
    }
    Ok((schedules, notes))
}

fn unschedulable(e: &ExportSpec) -> Option<String> {
    if e.state == ExportState::Draft {
        return Some("it is a draft (set state = \"active\" to schedule it)".into());
    }
    if let Some(sluice_local::Folder { path }) = e.destination.settings_as::<sluice_local::Folder>() {
        return Some(format!(
            "it writes to the local folder {} and the export function writes only to S3 (destination = \"s3://<bucket>/<prefix>\")",
            path.display()
        ));
    }
    if e.destination.settings_as::<sluice_connect::S3Location>().is_none() {
        return Some(format!(
            "it writes to {} and the export function writes only to S3 (destination = \"s3://<bucket>/<prefix>\")",
            e.destination
        ));
    }
    None
}

fn camel(name: &str) -> String {
    name.split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

/// The section's YAML, indented to sit under `Resources:`, markers included.
pub fn section(schedules: &[Schedule]) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("a string serializes");
    let mut out = format!(
        "  {BEGIN}: written by `sluice schedules --write` from the exports of the config; edit the config, not this.\n"
    );
    for s in schedules {
        let expression = s.expression.map(q).unwrap_or_else(|| "!Ref ExportSchedule".into());
        let state = if s.paused { "DISABLED" } else { "!Ref ScheduleState" };
        let input = q(&serde_json::json!({ "export": s.export }).to_string());
        out += &format!(
            "  {id}:
    Type: AWS::Events::Rule
    Properties:
      Description: {description}
      ScheduleExpression: {expression}
      State: {state}
      Targets:
        - Id: export
          Arn: !GetAtt ExportFunction.Arn
          Input: {input}
  {id}Permission:
    Type: AWS::Lambda::Permission
    Properties:
      Action: lambda:InvokeFunction
      FunctionName: !Ref ExportFunction
      Principal: events.amazonaws.com
      SourceArn: !GetAtt {id}.Arn
",
            id = s.id,
            description = q(&format!("Runs export {}", s.export)),
        );
    }
    out += &format!("  {END}\n");
    out
}

/// `template` with its section replaced by `section`.
pub fn replace_section(template: &str, section: &str) -> Result<String, String> {
    let lines: Vec<&str> = template.split_inclusive('\n').collect();
    let begin = lines.iter().position(|l| l.trim_start().starts_with(BEGIN));
    let end = lines.iter().position(|l| l.trim_start().starts_with(END));
    match (begin, end) {
        (Some(b), Some(e)) if b < e => {
            let mut out: String = lines[..b].concat();
            out += section;
            out += &lines[e + 1..].concat();
            Ok(out)
        }
        _ => Err(format!(
            "it has no `{BEGIN}` line followed by an `{END}` line: add both under Resources: (as in the repository's template.yaml), then run this again"
        )),
    }
}

pub fn schedules(config: &Config, args: &SchedulesArgs, json: bool) -> Result<u8> {
    if json && args.write.is_some() {
        return Err(Usage(
            "--write writes the template's YAML section; --json prints the list for the CDK app: give one of them"
                .into(),
        )
        .into());
    }
    let (schedules, notes) = plan(config).map_err(|invalid| {
        Usage(format!("EventBridge would refuse these schedules:\n  - {}", invalid.join("\n  - ")))
    })?;
    for note in &notes {
        eprintln!("note: {note}");
    }
    if schedules.is_empty() {
        return Err(Usage(format!(
            "no export in {} can be scheduled: the export function runs active or paused exports that write to S3",
            config.path.display()
        ))
        .into());
    }
    if json {
        let list: Vec<_> = schedules
            .iter()
            .map(|s| serde_json::json!({"id": s.id, "export": s.export, "schedule": s.expression, "paused": s.paused}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(crate::exit::OK);
    }
    let text = section(&schedules);
    let Some(path) = &args.write else {
        print!("{text}");
        return Ok(crate::exit::OK);
    };
    let template = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let updated = replace_section(&template, &text).map_err(|why| Usage(format!("{}: {why}", path.display())))?;
    // Beside the template, then renamed over it: an interrupted write leaves the old one whole.
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, updated).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    eprintln!("wrote {} schedule(s) to {}", schedules.len(), path.display());
    Ok(crate::exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_logical_ids() {
        assert_eq!(camel("crm_updates"), "CrmUpdates");
        assert_eq!(camel("a__b_2"), "AB2");
    }

    #[test]
    fn the_section_is_replaced_between_its_markers_only() {
        let template =
            "Resources:\n  A: 1\n  # BEGIN sluice schedules: old\n  Old: 1\n  # END sluice schedules\n  B: 2\n";
        let out =
            replace_section(template, "  # BEGIN sluice schedules\n  New: 1\n  # END sluice schedules\n").unwrap();
        assert_eq!(out, "Resources:\n  A: 1\n  # BEGIN sluice schedules\n  New: 1\n  # END sluice schedules\n  B: 2\n");
        assert!(replace_section("Resources:\n  A: 1\n", "").unwrap_err().contains("# BEGIN sluice schedules"));
        let reversed = "  # END sluice schedules\n  # BEGIN sluice schedules\n";
        assert!(replace_section(reversed, "").is_err());
    }
}
