//! `deploy` and `dispose` at the command line: open the deployment, show the plan, ask,
//! carry it out, and say what happened, ending with one summary line (Terraform's "Apply
//! complete!") that a script or a person scrolling back can find.

use std::process::ExitCode;

use super::{Failure, INTERRUPTED, confirm};
use crate::bootstrap;
use crate::diagnostics::plural;
use crate::operations::deploy::{ApplyOptions, DeployResult, Deployment};
use crate::operations::dispose::{self, Disposal};
use crate::operations::saved::Expected;
use crate::operations::{Checked, OperationError, Workspace};
use crate::plan::Action;

/// How `deploy` was asked.
pub struct Deploying {
    pub yes: bool,
    pub force_protected: bool,
    /// `fitter deploy FILE` with a saved plan: what it must still be.
    pub saved: Option<Expected>,
}

/// How `dispose` was asked.
pub struct Disposing {
    pub yes: bool,
    pub dry_run: bool,
    pub force_protected: bool,
}

pub async fn deploy(
    checked: Checked,
    ws: Workspace,
    how: Deploying,
    options: ApplyOptions,
) -> Result<ExitCode, Failure> {
    let state_path = ws.store.location();
    let nodes: Vec<&str> = checked
        .fittings
        .nodes
        .iter()
        .map(|n| n.name.value.as_str())
        .collect();
    if let Some(unknown) = options.limit.iter().find(|l| !nodes.contains(&l.as_str())) {
        let hint = match fitter_providers::did_you_mean(unknown, nodes.iter().copied()) {
            Some(best) => format!("did you mean `{best}`?"),
            None => format!("its nodes: {}", nodes.join(", ")),
        };
        return Err(format!("error: --limit {unknown}: no such node in the plan; {hint}").into());
    }
    let mut deployment =
        Deployment::open(&checked, ws, "fitter deploy", &options, how.saved.as_ref()).await?;
    deployment.detect_drift().await?;
    for address in &deployment.gone {
        errln!(
            "{}",
            super::planned::gone(&checked, address, "it will be created again")
        );
    }
    let the_plan = deployment.plan(&checked, options.skip_bootstrap, options.revoke_old_key)?;
    out!("{}", the_plan.render());
    if let Some(saved) = &how.saved {
        saved.check_plan(&the_plan).map_err(OperationError::from)?;
    }
    let refused = dispose::destroys_protected(&checked, deployment.state.state(), &the_plan);
    if !refused.is_empty() && !how.force_protected {
        return Err(format!(
            "error: `destroy: never` protects what this plan would destroy:\n  {}\n  = help: change the plan back, or pass `--force-protected` to destroy it anyway",
            refused.join("\n  ")
        )
        .into());
    }
    // A saved plan was looked at when it was saved: it is applied as it is, unasked
    // (Terraform's `apply PLANFILE`).
    let asked = how.yes || how.saved.is_some();
    if the_plan.has_changes() && !confirm(asked, "perform these actions")? {
        errln!("Nothing changed.");
        return Ok(ExitCode::from(1));
    }
    let result = deployment.deploy(&checked, &the_plan, &options).await?;
    if let Some(report) = &result.applied {
        outln!();
        out!("{}", report.render());
        if report.failed() > 0 {
            errln!(
                "error: {} of {} changes did not complete; what was created is recorded in {}; run deploy again to finish",
                report.failed(),
                report.steps.len(),
                state_path
            );
        }
    }
    if let Some(b) = &result.bootstrap {
        outln!();
        out!("{}", bootstrap::render_report(&b.nodes, &b.not_ready));
    }
    outln!();
    out!("{}", result.information.render());
    outln!();
    outln!("{}", summary(&result, options.cancel.is_cancelled()));
    if options.cancel.is_cancelled() {
        errln!(
            "error: interrupted (Ctrl-C): what finished is recorded in {}; run deploy again to finish",
            state_path
        );
        return Ok(ExitCode::from(INTERRUPTED));
    }
    Ok(if result.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `Deploy complete: 3 added, 1 changed, 0 destroyed; 5 nodes configured.` Counted from
/// what was done, not what was planned: a replace is one added and one destroyed, as
/// Terraform counts it (its delete is a step of its own). Anything short of complete says so first.
fn summary(result: &DeployResult, interrupted: bool) -> String {
    let (mut added, mut changed, mut destroyed, mut failed) = (0, 0, 0, 0);
    for step in result.applied.iter().flat_map(|r| &r.steps) {
        if !step.done() {
            failed += 1;
            continue;
        }
        match step.action {
            Action::Create => added += 1,
            Action::Update => changed += 1,
            // The engine reports a replace as its delete, then its create.
            Action::Replace => added += 1,
            Action::Delete => destroyed += 1,
        }
    }
    let mut line = format!("{added} added, {changed} changed, {destroyed} destroyed");
    if failed > 0 {
        line.push_str(&format!(", {failed} not done"));
    }
    if let Some(b) = &result.bootstrap {
        let broken = b.nodes.iter().filter(|n| n.error.is_some()).count();
        let configured = b.nodes.len() - broken;
        line.push_str(&format!(
            "; {configured} node{} configured",
            plural(configured)
        ));
        if broken > 0 {
            line.push_str(&format!(", {broken} failed"));
        }
        if !b.not_ready.is_empty() {
            line.push_str(&format!(", {} not ready", b.not_ready.len()));
        }
    }
    let verdict = if interrupted {
        "Deploy interrupted"
    } else if result.succeeded() {
        "Deploy complete"
    } else {
        "Deploy incomplete"
    };
    format!("{verdict}: {line}.")
}

pub async fn dispose(
    checked: Checked,
    ws: Workspace,
    how: Disposing,
    options: ApplyOptions,
) -> Result<ExitCode, Failure> {
    if how.dry_run {
        let disposal = dispose::dry_run(
            &checked,
            &ws,
            how.force_protected,
            options.allow_insecure_http,
        )
        .await?;
        say_what_stays(&disposal);
        out!("{}", listing(&disposal));
        return Ok(ExitCode::SUCCESS);
    }
    let mut deployment = Deployment::open(&checked, ws, "fitter dispose", &options, None).await?;
    let disposal = deployment
        .plan_dispose(&checked, how.force_protected)
        .await?;
    say_what_stays(&disposal);
    let the_plan = &disposal.plan;
    if !the_plan.has_changes() {
        outln!("{}", nothing_to_dispose(&disposal));
        return Ok(ExitCode::SUCCESS);
    }
    out!("{}", the_plan.render());
    if !confirm(how.yes, "destroy all of these")? {
        errln!("Nothing changed.");
        return Ok(ExitCode::from(1));
    }
    let report = deployment.dispose(&checked, the_plan, &options).await?;
    out!("{}", report.render());
    if options.cancel.is_cancelled() {
        errln!("error: interrupted (Ctrl-C): run dispose again to finish");
        return Ok(ExitCode::from(INTERRUPTED));
    }
    if report.failed() > 0 {
        errln!(
            "error: {} of {} deletions did not complete; run dispose again",
            report.failed(),
            report.steps.len()
        );
        return Ok(ExitCode::from(1));
    }
    let deployment = &checked.fittings.deployment;
    let kept = disposal.kept();
    if let Some(selection) = &checked.selection {
        let names: Vec<&str> = selection.blueprints.iter().map(String::as_str).collect();
        outln!(
            "Blueprint(s) {} of `{deployment}` disposed of; the rest of the deployment is as it was.",
            names.join(", "),
        );
    } else if kept.is_empty() {
        outln!("Deployment `{deployment}` disposed of: nothing left.");
    } else {
        outln!(
            "Deployment `{deployment}` disposed of but for {} resource{} `destroy: never` keeps.",
            kept.len(),
            plural(kept.len())
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Not "matches the plan": there is nothing at all, whether it never was or is gone, or
/// only what is protected is left.
fn nothing_to_dispose(disposal: &Disposal) -> String {
    let deployment = &disposal.plan.deployment;
    if disposal.kept().is_empty() {
        format!(
            "Nothing to dispose of: no resource of `{deployment}` is recorded in its state or carries its mark."
        )
    } else {
        format!(
            "Nothing to dispose of: what is left of `{deployment}` is kept by `destroy: never` (`--force-protected` destroys it)."
        )
    }
}

fn say_what_stays(disposal: &Disposal) {
    for a in &disposal.adopted {
        errln!(
            "`{a}` carries the deployment's mark but was not in the state; it will be destroyed too."
        );
    }
    for k in &disposal.protected {
        if disposal.forced {
            errln!("`{k}` is protected by `destroy: never`; `--force-protected` destroys it.");
        } else {
            errln!(
                "`{k}` is kept: `destroy: never` in the plan protects it (or a node that needs it)."
            );
        }
    }
}

/// `dispose --dry-run`: one line per resource to destroy, with its provider's id and its
/// addresses, then the count; the order is the order of destruction.
fn listing(disposal: &Disposal) -> String {
    use std::fmt::Write as _;
    let changes = &disposal.plan.changes;
    if changes.is_empty() {
        return format!("{}\n", nothing_to_dispose(disposal));
    }
    let width = changes.iter().map(|c| c.address.len()).max().unwrap_or(0);
    let mut out = format!(
        "dispose would destroy, in this order ({} of `{}`):\n",
        changes.len(),
        disposal.plan.deployment
    );
    for change in changes {
        let recorded = disposal.state.resources.get(&change.address);
        let id = recorded
            .and_then(|r| r.id.as_deref())
            .unwrap_or("(no id yet)");
        let addresses: Vec<String> = recorded
            .map(|r| {
                [r.outputs.public_ip, r.outputs.private_ip]
                    .into_iter()
                    .flatten()
                    .map(|ip| ip.to_string())
                    .collect()
            })
            .unwrap_or_default();
        let _ = write!(
            out,
            "  - {:width$}  {} id {id}",
            change.address, change.provider
        );
        if !addresses.is_empty() {
            let _ = write!(out, "  {}", addresses.join(" "));
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "Nothing was destroyed: this was a dry run. `fitter dispose` destroys {} resource{}.",
        changes.len(),
        plural(changes.len())
    );
    out
}

/// `fitter import`: the resource recorded, what differs from the plan, what to do next.
pub async fn import(
    checked: Checked,
    ws: Workspace,
    address: &str,
    id: &str,
    host_key: Option<&str>,
    options: ApplyOptions,
) -> Result<ExitCode, Failure> {
    let mut deployment = Deployment::open(&checked, ws, "fitter import", &options, None).await?;
    let imported = deployment.import(&checked, address, id, host_key).await?;
    let name = imported
        .name
        .as_deref()
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    outln!(
        "Imported {}{name} as `{}`: it is in the state now; nothing was changed at the provider.",
        imported.id,
        imported.address
    );
    for d in &imported.differences {
        outln!("  differs from the plan: {d}");
    }
    if imported.no_host_key {
        outln!(
            "  no host key pinned: deploy will not configure it until one is (`fitter import` again after `fitter state rm {}`, with --host-key)",
            imported.address
        );
    }
    outln!("`fitter plan` shows what deploy would change to make it the plan's.");
    Ok(ExitCode::SUCCESS)
}
