//! The changes to managed exports and their orchestrations that people make, and the
//! permission each needs: one list for every surface that makes them (the control API, the
//! console), so an action maps to exactly one permission wherever it is asked for.
//!
//! | grant     | changes                                                          |
//! |-----------|------------------------------------------------------------------|
//! | configure | create, edit, activate, discard, delete an export                |
//! | operate   | pause and resume an export; create, pause, resume, delete orchestrations; run now; replay failures |

use crate::catalog::Edit;

/// One of the two permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    Configure,
    Operate,
}

impl Grant {
    pub fn as_str(self) -> &'static str {
        match self {
            Grant::Configure => "configure",
            Grant::Operate => "operate",
        }
    }

    /// The stack's managed policy that gives it.
    pub fn policy(self) -> &'static str {
        match self {
            Grant::Configure => "ConfigurePolicy",
            Grant::Operate => "OperatePolicy",
        }
    }
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Status,
    Show {
        export: String,
        version: Option<u64>,
    },
    Audit {
        export: String,
        limit: usize,
    },
    Orchestrations,
    Create {
        definition: String,
    },
    Edit {
        export: String,
        edit: Edit,
        revision: Option<u64>,
    },
    Activate {
        export: String,
        revision: Option<u64>,
    },
    Discard {
        export: String,
        revision: Option<u64>,
    },
    Delete {
        export: String,
        force: bool,
        revision: Option<u64>,
    },
    Pause {
        export: String,
        paused: bool,
        revision: Option<u64>,
    },
    Orchestrate {
        export: String,
        name: String,
        schedule: String,
        destination: Option<String>,
    },
    PauseOrchestration {
        export: String,
        name: String,
        paused: bool,
    },
    DeleteOrchestration {
        export: String,
        name: String,
    },
    /// Run the export now (in AWS: invoke the export function, which the operate policy grants).
    RunNow {
        export: String,
    },
    /// Send a failures file's records again (in AWS: invoke the integration function).
    Replay {
        export: String,
        integration: String,
        failures: String,
    },
}

impl Action {
    /// The permission a change needs; None for reads, which both functions serve.
    pub fn needs(&self) -> Option<Grant> {
        match self {
            Action::Status | Action::Show { .. } | Action::Audit { .. } | Action::Orchestrations => None,
            Action::Create { .. }
            | Action::Edit { .. }
            | Action::Activate { .. }
            | Action::Discard { .. }
            | Action::Delete { .. } => Some(Grant::Configure),
            Action::Pause { .. }
            | Action::Orchestrate { .. }
            | Action::PauseOrchestration { .. }
            | Action::DeleteOrchestration { .. }
            | Action::RunNow { .. }
            | Action::Replay { .. } => Some(Grant::Operate),
        }
    }

    /// The export the action concerns, if one.
    pub fn export(&self) -> Option<&str> {
        match self {
            Action::Create { .. } | Action::Status | Action::Orchestrations => None,
            Action::Show { export, .. }
            | Action::Audit { export, .. }
            | Action::Edit { export, .. }
            | Action::Activate { export, .. }
            | Action::Discard { export, .. }
            | Action::Delete { export, .. }
            | Action::Pause { export, .. }
            | Action::Orchestrate { export, .. }
            | Action::PauseOrchestration { export, .. }
            | Action::DeleteOrchestration { export, .. }
            | Action::RunNow { export }
            | Action::Replay { export, .. } => Some(export),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Action::Status => "status",
            Action::Show { .. } => "show",
            Action::Audit { .. } => "audit",
            Action::Orchestrations => "list orchestrations",
            Action::Create { .. } => "create",
            Action::Edit { .. } => "edit",
            Action::Activate { .. } => "activate",
            Action::Discard { .. } => "discard",
            Action::Delete { .. } => "delete",
            Action::Pause { paused: true, .. } => "pause",
            Action::Pause { paused: false, .. } => "resume",
            Action::Orchestrate { .. } => "create an orchestration",
            Action::PauseOrchestration { paused: true, .. } => "pause an orchestration",
            Action::PauseOrchestration { paused: false, .. } => "resume an orchestration",
            Action::DeleteOrchestration { .. } => "delete an orchestration",
            Action::RunNow { .. } => "run now",
            Action::Replay { .. } => "replay failures",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_change_needs_one_permission_and_reads_none() {
        let e = || "crm".to_string();
        assert_eq!(Action::Status.needs(), None);
        assert_eq!(Action::Activate { export: e(), revision: None }.needs(), Some(Grant::Configure));
        assert_eq!(Action::Delete { export: e(), force: false, revision: None }.needs(), Some(Grant::Configure));
        assert_eq!(Action::Pause { export: e(), paused: true, revision: None }.needs(), Some(Grant::Operate));
        assert_eq!(Action::RunNow { export: e() }.needs(), Some(Grant::Operate));
        let replay = Action::Replay { export: e(), integration: "hook".into(), failures: "f".into() };
        assert_eq!((replay.needs(), replay.name()), (Some(Grant::Operate), "replay failures"));
    }
}
