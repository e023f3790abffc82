//! A small typed builder for Zero's query AST, the JSON the query endpoint answers with (its
//! format is defined by Zero, in `packages/zero-protocol/src/ast.ts` of zero 1.9.0).
//!
//! zero-cache rejects `null` for optional fields and needs an `alias` on every subquery, so the
//! types skip absent optionals when serialising, and the constructor of a subquery
//! ([`CorrelatedSubquery::new`]) takes the alias. Names are server (replica) names.

use serde::Serialize;
use serde_json::Value;

/// Sort direction.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Dir {
    Asc,
    Desc,
}

/// Comparison operators of a simple condition.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub enum Op {
    #[serde(rename = "=")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = "IS")]
    Is,
    #[serde(rename = "IS NOT")]
    IsNot,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "IN")]
    In,
    #[serde(rename = "ILIKE")]
    ILike,
}

/// The left side of a simple condition: always a column here.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ValuePos {
    Column { name: String },
}

/// The right side: a literal (never an object; arrays only for `IN`).
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Literal {
    Literal { value: Value },
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub enum ExistsOp {
    #[serde(rename = "EXISTS")]
    Exists,
    #[serde(rename = "NOT EXISTS")]
    NotExists,
}

/// A `where` condition.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(tag = "type")]
pub enum Condition {
    #[serde(rename = "simple")]
    Simple {
        left: ValuePos,
        op: Op,
        right: Literal,
    },
    #[serde(rename = "and")]
    And { conditions: Vec<Condition> },
    #[serde(rename = "or")]
    Or { conditions: Vec<Condition> },
    #[serde(rename = "correlatedSubquery")]
    CorrelatedSubquery {
        op: ExistsOp,
        related: Box<CorrelatedSubquery>,
    },
}

impl Condition {
    pub fn cmp(column: &str, op: Op, value: impl Into<Value>) -> Condition {
        Condition::Simple {
            left: ValuePos::Column {
                name: column.to_string(),
            },
            op,
            right: Literal::Literal {
                value: value.into(),
            },
        }
    }

    pub fn eq(column: &str, value: impl Into<Value>) -> Condition {
        Condition::cmp(column, Op::Eq, value)
    }

    pub fn and(conditions: Vec<Condition>) -> Condition {
        Condition::And { conditions }
    }

    pub fn or(conditions: Vec<Condition>) -> Condition {
        Condition::Or { conditions }
    }

    /// Matches no row: the idiom for "denied".
    pub fn none() -> Condition {
        Condition::Or { conditions: vec![] }
    }

    pub fn exists(related: CorrelatedSubquery) -> Condition {
        Condition::CorrelatedSubquery {
            op: ExistsOp::Exists,
            related: Box::new(related),
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Correlation {
    pub parent_field: Vec<String>,
    pub child_field: Vec<String>,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum System {
    Client,
    Permissions,
}

/// A joined subquery, used both in `related` and inside `EXISTS`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CorrelatedSubquery {
    pub correlation: Correlation,
    pub subquery: Box<Ast>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<System>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden: Option<bool>,
}

impl CorrelatedSubquery {
    /// Joins `parent.parent_field = child.child_field`; `alias` is mandatory (zero-cache needs
    /// one on every subquery: the relationship name in `related`, `zsubq_<rel>` in `EXISTS`).
    pub fn new(parent_field: &str, child_field: &str, alias: &str, mut subquery: Ast) -> Self {
        subquery.alias = Some(alias.to_string());
        CorrelatedSubquery {
            correlation: Correlation {
                parent_field: vec![parent_field.to_string()],
                child_field: vec![child_field.to_string()],
            },
            subquery: Box::new(subquery),
            system: Some(System::Client),
            hidden: None,
        }
    }
}

/// A query AST.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Ast {
    pub table: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(rename = "where", skip_serializing_if = "Option::is_none")]
    pub where_: Option<Condition>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<CorrelatedSubquery>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub order_by: Vec<(String, Dir)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

impl Ast {
    pub fn table(name: &str) -> Ast {
        Ast {
            table: name.to_string(),
            alias: None,
            where_: None,
            related: vec![],
            order_by: vec![],
            limit: None,
        }
    }

    /// Adds a condition; several calls are AND-ed (like chained `.where()` in ZQL).
    pub fn filter(mut self, c: Condition) -> Ast {
        self.where_ = Some(match self.where_.take() {
            None => c,
            Some(Condition::And { mut conditions }) => {
                conditions.push(c);
                Condition::And { conditions }
            }
            Some(prev) => Condition::And {
                conditions: vec![prev, c],
            },
        });
        self
    }

    pub fn order_by(mut self, column: &str, dir: Dir) -> Ast {
        self.order_by.push((column.to_string(), dir));
        self
    }

    pub fn limit(mut self, n: u64) -> Ast {
        self.limit = Some(n);
        self
    }

    pub fn related(mut self, r: CorrelatedSubquery) -> Ast {
        self.related.push(r);
        self
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("an AST always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn omits_absent_optionals() {
        assert_eq!(
            Ast::table("channels").to_json(),
            json!({"table": "channels"})
        );
    }

    #[test]
    fn matches_the_reference_examples() {
        // What zero 1.9.0's own query builder emits for
        // `message.where('roomID', 'r1').orderBy('createdAt', 'desc').limit(50).related('sender')`.
        let ast = Ast::table("message")
            .filter(Condition::eq("roomID", "r1"))
            .order_by("createdAt", Dir::Desc)
            .limit(50)
            .related(CorrelatedSubquery::new(
                "senderID",
                "id",
                "sender",
                Ast::table("user"),
            ));
        assert_eq!(
            ast.to_json(),
            json!({"table":"message",
                "where":{"type":"simple","left":{"type":"column","name":"roomID"},"op":"=","right":{"type":"literal","value":"r1"}},
                "orderBy":[["createdAt","desc"]],"limit":50,
                "related":[{"system":"client","correlation":{"parentField":["senderID"],"childField":["id"]},
                            "subquery":{"table":"user","alias":"sender"}}]})
        );
        // ... and for `room.whereExists('memberships', q => q.where('userID', 'u1'))`.
        let ast = Ast::table("rooms").filter(Condition::exists(CorrelatedSubquery::new(
            "id",
            "roomID",
            "zsubq_memberships",
            Ast::table("roomMember").filter(Condition::eq("userID", "u1")),
        )));
        assert_eq!(
            ast.to_json(),
            json!({"table":"rooms",
             "where":{"type":"correlatedSubquery","op":"EXISTS",
               "related":{"system":"client","correlation":{"parentField":["id"],"childField":["roomID"]},
                 "subquery":{"table":"roomMember","alias":"zsubq_memberships",
                   "where":{"type":"simple","left":{"type":"column","name":"userID"},"op":"=","right":{"type":"literal","value":"u1"}}}}}})
        );
    }

    #[test]
    fn deny_and_chained_filters() {
        assert_eq!(
            Ast::table("x").filter(Condition::none()).to_json(),
            json!({"table":"x","where":{"type":"or","conditions":[]}})
        );
        let ast = Ast::table("x")
            .filter(Condition::eq("a", 1))
            .filter(Condition::cmp("b", Op::IsNot, true))
            .filter(Condition::cmp("c", Op::Is, Value::Null));
        let w = &ast.to_json()["where"];
        assert_eq!(w["type"], "and");
        assert_eq!(w["conditions"].as_array().unwrap().len(), 3);
        assert_eq!(w["conditions"][1]["op"], "IS NOT");
        assert_eq!(
            w["conditions"][2]["right"],
            json!({"type":"literal","value":null})
        );
    }
}
