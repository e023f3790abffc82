//! ZRocket's business rules: rooms, messages, memberships and users.
//!
//! REST handlers and Zero custom mutators run the very same commands, so a message sent either
//! way is validated, authorised and written identically, always inside one MongoDB transaction
//! (a message and its room's `lastMessage`/`messageCount` change together). The caller is
//! always the token's user; commands carry no user identity of their own.
//!
//! Where things are:
//! - `commands`: every write as data ([`commands::Command`]) and the mutator names.
//! - `transaction`: running a command in a transaction, and retrying it.
//! - `access`: who may read a room, post, join, invite, edit or delete.
//! - `validation`: input rules that need no database (ids, texts, limits, clocks).
//! - `messages`: sending, editing, deleting and listing messages.
//! - `rooms`: creating, joining, leaving and inviting to rooms; "my rooms".
//! - `members`: the room's `members` array (what `roomMembers` unwinds), kept equal to its
//!   subscriptions; the start-up backfill.
//! - `users`: the caller, named users, user listings.
//! - `error`: [`error::DomainError`], what all of them return.

pub mod access;
pub mod commands;
pub mod error;
pub mod members;
pub mod messages;
pub mod rooms;
pub mod transaction;
pub mod users;
pub mod validation;
