//! Every write ZRocket knows, as data: the commands and their arguments.
//!
//! A command is the same whether it arrives as a REST request or as a Zero custom mutator: REST
//! handlers build one from the path and body, the mutate endpoint parses one from the mutator's
//! name and arguments ([`Command::from_mutator`]), and both hand it to `transaction`, which runs
//! it. The argument structs are also the mutators' argument shapes (camelCase JSON). None of them
//! carries a user: the [`Caller`] comes from the verified token only, so sender fields a client
//! puts into the arguments are ignored.

use serde::Deserialize;
use serde_json::Value;

/// The authenticated user a command runs as (from the token only).
#[derive(Clone, Debug)]
pub struct Caller {
    pub user_id: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendMessage {
    pub id: String,
    pub room_id: String,
    pub text: String,
    /// The client's clock (epoch ms); used when plausible so the optimistic order holds.
    #[serde(default)]
    pub created_at: Option<f64>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct EditMessage {
    pub id: String,
    pub text: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct DeleteMessage {
    pub id: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRoom {
    pub id: String,
    #[serde(rename = "type")]
    pub room_type: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub member_ids: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomRef {
    pub room_id: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InviteToRoom {
    pub room_id: String,
    pub user_ids: Vec<String>,
}

/// Every write ZRocket knows.
#[derive(Clone, Debug)]
pub enum Command {
    SendMessage(SendMessage),
    EditMessage(EditMessage),
    DeleteMessage(DeleteMessage),
    CreateRoom(CreateRoom),
    JoinRoom(RoomRef),
    LeaveRoom(RoomRef),
    InviteToRoom(InviteToRoom),
}

/// The custom mutator names, in the order the OpenAPI/README list them.
pub const MUTATOR_NAMES: [&str; 7] = [
    "message.send",
    "message.edit",
    "message.delete",
    "room.create",
    "room.join",
    "room.leave",
    "room.invite",
];

fn parse_args<T: for<'de> Deserialize<'de>>(name: &str, args: Value) -> Result<T, String> {
    serde_json::from_value(args).map_err(|e| format!("invalid arguments for {name}: {e}"))
}

impl Command {
    /// Parses a mutator call. `None` means the name is unknown.
    pub fn from_mutator(name: &str, args: Value) -> Option<Result<Command, String>> {
        let args = if args.is_null() {
            Value::Object(Default::default())
        } else {
            args
        };
        Some(match name {
            "message.send" => parse_args(name, args).map(Command::SendMessage),
            "message.edit" => parse_args(name, args).map(Command::EditMessage),
            "message.delete" => parse_args(name, args).map(Command::DeleteMessage),
            "room.create" => parse_args(name, args).map(Command::CreateRoom),
            "room.join" => parse_args(name, args).map(Command::JoinRoom),
            "room.leave" => parse_args(name, args).map(Command::LeaveRoom),
            "room.invite" => parse_args(name, args).map(Command::InviteToRoom),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutator_parsing_ignores_user_ids_and_reports_bad_args() {
        let cmd = Command::from_mutator(
            "message.send",
            serde_json::json!({"id": "m1", "roomId": "r1", "text": "hi", "createdAt": 1, "userId": "u-bob"}),
        )
        .unwrap()
        .unwrap();
        assert!(matches!(cmd, Command::SendMessage(SendMessage { ref id, .. }) if id == "m1"));
        let err = Command::from_mutator("message.send", serde_json::json!({"id": "m1"}))
            .unwrap()
            .unwrap_err();
        assert!(
            err.contains("message.send") && err.contains("roomId"),
            "{err}"
        );
        assert!(Command::from_mutator("nope.nope", Value::Null).is_none());
    }
}
