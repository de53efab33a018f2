//! Wire types of the MemOS cloud API (`/api/openmem/v1`) and their conversion to and from
//! the domain. Required fields are `Option`s checked by hand so that a missing one gets
//! MemOS's 40002 code with the field's name rather than a serde message.

mod answers;
mod chat;
mod fields;
mod knowledge;
mod messages;
mod profiles;
mod requests;

pub use answers::*;
pub use chat::*;
pub use fields::*;
pub use knowledge::*;
pub use messages::*;
pub use profiles::*;
pub use requests::*;
