//! Monitoring and early warning (稳岗就业监测预警): alerts that open or reopen assistance.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What raised an alert; a request for help is a trigger of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertTrigger {
    /// The person lost their job.
    JobLost,
    /// Wages are owed to the person.
    WageArrears,
    /// Household income fell below the line.
    IncomeBelowLine,
    /// Returned home from work out of the province.
    ReturnedHome,
    /// Unemployed for a long time.
    LongTermUnemployed,
    /// The person asked for help.
    HelpRequested,
}

/// Where an alert came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertSource {
    /// Data shared by another department.
    DataSharing,
    /// A service window or community station.
    ServicePoint,
    /// The hotline.
    Hotline,
    /// An online service.
    Online,
    /// Raised by a caseworker.
    Caseworker,
}

/// `alert_raised`: a monitoring alert or request for help; starts the 2473 response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertRaised {
    /// Id of the alert, referred to by the response steps.
    pub alert_id: Uuid,
    /// What raised it.
    pub trigger: AlertTrigger,
    /// Where it came from.
    pub source: AlertSource,
}

super::no_further_rules!(AlertRaised);
