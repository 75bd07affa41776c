#!/usr/bin/env node
// The CDK app: one Sluice stack, checked by cdk-nag's AwsSolutions pack on every synth.
//
//   cargo lambda build --release --arm64 -p sluice-export-fn -p sluice-integrate-fn -p sluice-control-fn   (from the repo root)
//   npx cdk deploy --parameters SourceSecretArn=... --parameters IntegrationTokenSecretArn=...
//
// Context: `-c stackName=NAME` (default Sluice), `-c assets=DIR` (default: the `lambda` folder
// of cargo's target directory, where `cargo lambda build` leaves each function's bootstrap),
// `-c schedules=FILE` (the output of `sluice schedules --json`; default: one schedule, for the
// ExportName parameter).
import * as fs from 'fs';
import * as path from 'path';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ScheduledExport, SluiceStack } from '../lib/sluice-stack';

const app = new App();
const repo = path.resolve(__dirname, '..', '..');
const targetDir = process.env.CARGO_TARGET_DIR ? path.resolve(repo, process.env.CARGO_TARGET_DIR) : path.join(repo, 'target');
const assets = path.resolve(app.node.tryGetContext('assets') ?? path.join(targetDir, 'lambda'));

const functions = ['sluice-export', 'sluice-integrate', 'sluice-control'];
const missing = functions.filter((f) => !fs.existsSync(path.join(assets, f, 'bootstrap')));
if (missing.length > 0) {
  console.error(
    `sluice infra: no built ${missing.join(', ')} in ${assets} (each needs a <name>/bootstrap).\n` +
      'Build them first, from the repository root:\n' +
      '  cargo lambda build --release --arm64 -p sluice-export-fn -p sluice-integrate-fn -p sluice-control-fn\n' +
      `or point -c assets=DIR at a folder holding ${functions.map((f) => `${f}/bootstrap`).join(', ')}.`,
  );
  process.exit(2);
}

// `sluice schedules --json > schedules.json` then `-c schedules=schedules.json`: one rule per
// export of the config, as `sluice schedules --write template.yaml` does for SAM.
const schedulesFile: string | undefined = app.node.tryGetContext('schedules');
let schedules: ScheduledExport[] | undefined;
if (schedulesFile) {
  try {
    schedules = JSON.parse(fs.readFileSync(schedulesFile, 'utf8'));
  } catch (e) {
    console.error(`sluice infra: cannot read the schedules in ${schedulesFile} (write them with \`sluice schedules --json\`): ${e}`);
    process.exit(2);
  }
}

new SluiceStack(app, app.node.tryGetContext('stackName') ?? 'Sluice', { assets, schedules, analyticsReporting: false });
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();
