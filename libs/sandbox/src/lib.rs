//! Privilege separation: what each service may do (profiles), how a process
//! gives up privilege, and the start-up sequence every worker shares.

pub mod landlock;
pub mod privileges;
#[doc(hidden)]
pub mod probe_harness;
pub mod profiles;
pub mod seccomp;
pub mod worker;

pub use landlock::LandlockState;
pub use privileges::{
    Identity, Placement, SandboxError, become_user, enter, enter_serving, identity_in_group,
    lookup_user,
};
pub use profiles::Profile;
pub use seccomp::Mode;
pub use worker::{Sandboxed, Shutdown, Worker, die, sandbox_state_file, take_handoff_descriptors};
