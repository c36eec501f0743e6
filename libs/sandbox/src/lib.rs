//! Privilege separation: what each service may do (profiles), how a process
//! gives up privilege, and the start-up sequence every worker shares.

pub mod privileges;
pub mod profiles;
pub mod seccomp;
pub mod worker;

pub use privileges::{Identity, Placement, SandboxError, enter, lookup_user};
pub use profiles::Profile;
pub use seccomp::Mode;
pub use worker::{Shutdown, Worker, die};
