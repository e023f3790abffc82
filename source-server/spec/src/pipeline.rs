//! Pipeline mappings: `{source, pipeline: [...]}`, the aggregation subset that turns one
//! document into several rows (the members of an account, the items of an order).
//!
//! The earlier TypeScript source wrote these, and its users' files must load unchanged, so the
//! stages are MongoDB's own: `$match` (the filter language of [`crate::filter`]), `$unwind`,
//! `$addFields` / `$set` and `$project`, any number of times, in any order. Everything outside the
//! subset is refused at load with the stage or operator named, never half evaluated.
//!
//! Besides parsing, this module owns the static rules that need the table's primary key
//! ([`Pipeline::check_keys`], called by [`crate::resolve`]) and the one rule the source server
//! must enforce against MongoDB at start-up ([`Pipeline::needs_pre_images`]). The three programs
//! that read mappings (app, operator, source) therefore refuse the same files.
//!
//! Expression subset (in `$addFields`, `$set` and computed `$project` fields): field paths
//! (`"$a.b"`), constants (JSON and extended JSON), nested documents and arrays of expressions,
//! `$literal`, `$concat`, `$ifNull`, and the casts `$toString $toInt $toLong $toDouble $toDecimal
//! $toBool $toDate $toObjectId $convert`. Variables (`$$ROOT`, `$$NOW`, ...) are refused.

use std::collections::{BTreeSet, HashMap};

use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::error::{Cx, child, deserialize_via_parser, item, kind_of};
use crate::extjson;
use crate::filter::{self, Filter};
use crate::projection::{self, CastType};

/// The expression operators accepted, for messages and the README.
pub const EXPRESSION_OPERATORS: [&str; 12] = [
    "$literal",
    "$concat",
    "$ifNull",
    "$toString",
    "$toInt",
    "$toLong",
    "$toDouble",
    "$toDecimal",
    "$toBool",
    "$toDate",
    "$toObjectId",
    "$convert",
];

/// The stages accepted.
pub const STAGES: [&str; 5] = ["$match", "$unwind", "$addFields", "$set", "$project"];

/// A parsed pipeline. It serializes as the JSON it was read from, so that a file exported by
/// the app, hashed, or shown on `/metadata` is byte-for-byte what the user wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    pub stages: Vec<Stage>,
    json: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    Match(Filter),
    Unwind(Unwind),
    /// `$addFields` or its alias `$set`: `(path, expression)` in the order written.
    AddFields(Vec<(String, Expr)>),
    Project(Project),
}

/// `{$unwind: "$path"}` or `{$unwind: {path, includeArrayIndex?, preserveNullAndEmptyArrays?}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Unwind {
    /// Without the `$`.
    pub path: String,
    pub include_array_index: Option<String>,
    pub preserve_null_and_empty_arrays: bool,
}

/// A `$project` stage: `(path, field)` in the order written.
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    pub fields: Vec<(String, ProjectField)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProjectField {
    Include,
    Exclude,
    Computed(Expr),
}

impl Project {
    /// MongoDB's exclusion mode: every field but `_id` is excluded (or only `_id` is named and
    /// excluded).
    pub fn is_exclusion(&self) -> bool {
        let mut others = self.fields.iter().filter(|(k, _)| k != "_id").peekable();
        if others.peek().is_none() {
            return matches!(self.fields.first(), Some((_, ProjectField::Exclude)));
        }
        others.all(|(_, f)| *f == ProjectField::Exclude)
    }

    /// Whether an inclusion projection keeps `_id` (it does unless told `_id: 0`).
    pub fn keeps_id(&self) -> bool {
        !self
            .fields
            .iter()
            .any(|(k, f)| k == "_id" && *f == ProjectField::Exclude)
    }
}

/// An aggregation expression of the supported subset.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `"$a.b"`, stored without the `$`.
    Path(String),
    /// A constant: plain or extended JSON, or the argument of `$literal`.
    Literal(Value),
    /// `{a: <expr>, b: <expr>}`: a document built from expressions.
    Object(Vec<(String, Expr)>),
    /// `[<expr>, ..]`.
    Array(Vec<Expr>),
    /// `{$concat: [<expr>, ..]}`: strings joined; null if any is null or missing.
    Concat(Vec<Expr>),
    /// `{$ifNull: [<expr>, .., <replacement>]}`.
    IfNull(Vec<Expr>),
    Cast(Box<CastExpr>),
}

/// `{$toX: <expr>}` or `{$convert: {input, to, onError?, onNull?}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct CastExpr {
    pub to: CastType,
    pub input: Expr,
    pub on_error: Option<Value>,
    pub on_null: Option<Value>,
}

impl Expr {
    /// Every field path the expression reads (without `$`).
    pub fn paths<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Path(p) => out.push(p),
            Expr::Literal(_) => {}
            Expr::Object(fields) => fields.iter().for_each(|(_, e)| e.paths(out)),
            Expr::Array(items) | Expr::Concat(items) | Expr::IfNull(items) => {
                items.iter().for_each(|e| e.paths(out))
            }
            Expr::Cast(c) => c.input.paths(out),
        }
    }
}

impl Pipeline {
    pub fn from_json(value: &Value) -> Result<Pipeline, String> {
        crate::error::standalone(|cx| parse(value, "$", cx))
    }

    /// The JSON this pipeline was read from.
    pub fn json(&self) -> &Value {
        &self.json
    }

    /// Whether the source needs MongoDB's pre-images (`fullDocumentBeforeChange`, so
    /// `changeStreamPreAndPostImages` on the collection) to keep this table right.
    ///
    /// The rule: after an update or a delete the source must know every row the document
    /// yielded *before*, to delete the ones that are gone. Without a pre-image it only knows the
    /// document's `_id` (the `documentKey`). That is enough exactly when the pipeline yields at
    /// most one row per document (no `$unwind`) and every primary-key column is computed from
    /// `_id` alone (or constants). Any `$unwind`, or a key column read from another field (which
    /// an update can change), needs the before-document.
    pub fn needs_pre_images(&self, primary_key: &[String]) -> bool {
        if self.stages.iter().any(|s| matches!(s, Stage::Unwind(_))) {
            return true;
        }
        let flow = Flow::run(self);
        primary_key.iter().any(|k| match flow.origin(k) {
            None => true,
            Some(o) => !o.unwinds.is_empty() || o.sources.iter().any(|p| !from_id(p)),
        })
    }

    /// Checks the pipeline against the table's primary key (server column names): each key
    /// column is set, not dropped by a `$project`, and the rows one document yields can be told
    /// apart. Problems go to `cx` at `path` (the pipeline's JSON path) and its stages.
    pub(crate) fn check_keys(
        &self,
        table: &str,
        primary_key: &[String],
        path: &str,
        cx: &mut Cx<'_>,
    ) {
        let flow = Flow::run(self);
        let keys = primary_key.join(", ");
        let mut origins = Vec::new();
        for k in primary_key {
            match flow.origin(k) {
                Some(o) => origins.push(o),
                None => match (flow.dropped_by.get(k.as_str()), flow.dropped_by.get("*")) {
                    (Some(&i), _) => cx.err(
                        item(path, i),
                        format!("this $project drops {k:?}, a primary-key column of table {table:?}: keep it (\"{k}\": 1) or set it again in a later stage"),
                    ),
                    (None, Some(&i)) => cx.err(
                        item(path, i),
                        format!("this $project keeps only the fields it names, and {k:?}, a primary-key column of table {table:?}, is not one of them: add \"{k}\": 1 or compute it"),
                    ),
                    (None, None) => cx.err(
                        path,
                        format!("primary-key column {k:?} of table {table:?} is never set by the pipeline: set it, e.g. {{\"$addFields\": {{\"{k}\": \"$<field>\"}}}}"),
                    ),
                },
            }
        }
        if origins.len() != primary_key.len() {
            return;
        }
        for (i, s) in self.stages.iter().enumerate() {
            if let Stage::Unwind(u) = s
                && !origins.iter().any(|o| o.unwinds.contains(&i))
            {
                cx.err(
                    item(path, i),
                    format!("every row this $unwind yields from one document would have the same primary key ({keys}) of table {table:?}: derive a key column from \"${}\"{}, e.g. {{\"$addFields\": {{\"<key>\": \"${}.id\"}}}}",
                        u.path,
                        u.include_array_index.as_ref().map(|n| format!(" or from its index {n:?}")).unwrap_or_default(),
                        u.path),
                );
            }
        }
        if origins
            .iter()
            .all(|o| o.sources.is_empty() && o.unwinds.is_empty())
        {
            cx.err(
                path,
                format!("the primary key ({keys}) of table {table:?} is made of constants only: every document would give the same key"),
            );
        }
    }
}

/// `_id`, or a path inside it.
fn from_id(path: &str) -> bool {
    path == "_id" || path.starts_with("_id.")
}

/// What a top-level field of the stream of documents is made of: the source paths it was read
/// from, and the `$unwind` stages (by index) whose element or index it carries.
#[derive(Debug, Clone, Default)]
struct Origin {
    sources: BTreeSet<String>,
    unwinds: BTreeSet<usize>,
}

impl Origin {
    fn merge(&mut self, other: &Origin) {
        self.sources.extend(other.sources.iter().cloned());
        self.unwinds.extend(other.unwinds.iter().copied());
    }
}

/// A static run of the pipeline over field names, not values: which top-level fields exist at
/// the end and what each is made of. Source fields nobody touched pass through until an
/// inclusion `$project` ends that.
struct Flow {
    known: HashMap<String, Origin>,
    /// Source fields still present unless named in `gone`.
    passthrough: bool,
    gone: BTreeSet<String>,
    /// Field → the index of the last `$project` that dropped it.
    dropped_by: HashMap<String, usize>,
}

fn top(path: &str) -> &str {
    path.split('.').next().unwrap_or(path)
}

impl Flow {
    fn run(p: &Pipeline) -> Flow {
        let mut f = Flow {
            known: HashMap::new(),
            passthrough: true,
            gone: BTreeSet::new(),
            dropped_by: HashMap::new(),
        };
        for (i, stage) in p.stages.iter().enumerate() {
            match stage {
                Stage::Match(_) => {}
                Stage::Unwind(u) => {
                    let mut o = f.origin(top(&u.path)).unwrap_or_default();
                    o.sources.insert(u.path.clone());
                    o.unwinds.insert(i);
                    f.set(top(&u.path), o);
                    if let Some(n) = &u.include_array_index {
                        let mut o = Origin::default();
                        o.unwinds.insert(i);
                        f.set(top(n), o);
                    }
                }
                Stage::AddFields(fields) => {
                    let computed: Vec<(String, Origin)> = fields
                        .iter()
                        .map(|(k, e)| {
                            let mut o = f.expr_origin(e);
                            if k.contains('.') || matches!(e, Expr::Object(_)) {
                                // Merged into what is there.
                                if let Some(old) = f.origin(top(k)) {
                                    o.merge(&old);
                                }
                            }
                            (top(k).to_string(), o)
                        })
                        .collect();
                    for (k, o) in computed {
                        f.set(&k, o);
                    }
                }
                Stage::Project(proj) => f.project(proj, i),
            }
        }
        f
    }

    fn origin(&self, field: &str) -> Option<Origin> {
        if let Some(o) = self.known.get(field) {
            return Some(o.clone());
        }
        (self.passthrough && !self.gone.contains(field)).then(|| Origin {
            sources: BTreeSet::from([field.to_string()]),
            unwinds: BTreeSet::new(),
        })
    }

    fn path_origin(&self, path: &str) -> Origin {
        match self.known.get(top(path)) {
            Some(o) => o.clone(),
            None if self.passthrough && !self.gone.contains(top(path)) => Origin {
                sources: BTreeSet::from([path.to_string()]),
                unwinds: BTreeSet::new(),
            },
            None => Origin::default(),
        }
    }

    fn expr_origin(&self, e: &Expr) -> Origin {
        let mut paths = Vec::new();
        e.paths(&mut paths);
        let mut o = Origin::default();
        for p in paths {
            o.merge(&self.path_origin(p));
        }
        o
    }

    fn set(&mut self, field: &str, o: Origin) {
        self.gone.remove(field);
        self.known.insert(field.to_string(), o);
    }

    fn project(&mut self, proj: &Project, at: usize) {
        let before: Vec<String> = self.known.keys().cloned().collect();
        if proj.is_exclusion() {
            for (k, _) in &proj.fields {
                if !k.contains('.') {
                    self.known.remove(k);
                    self.gone.insert(k.clone());
                    self.dropped_by.insert(k.clone(), at);
                }
            }
            return;
        }
        let mut next: HashMap<String, Origin> = HashMap::new();
        if proj.keeps_id()
            && let Some(o) = self.origin("_id")
        {
            next.insert("_id".into(), o);
        }
        for (k, field) in &proj.fields {
            let o = match field {
                ProjectField::Exclude => {
                    self.dropped_by.insert(k.clone(), at);
                    continue;
                }
                ProjectField::Include => match self.origin(top(k)) {
                    Some(o) => o,
                    None => continue,
                },
                ProjectField::Computed(e) => self.expr_origin(e),
            };
            next.entry(top(k).to_string()).or_default().merge(&o);
        }
        for k in before {
            if !next.contains_key(&k) {
                self.dropped_by.insert(k, at);
            }
        }
        // Source fields that were passing through are gone too; remember the drop for the
        // ones a key might name.
        if self.passthrough {
            self.passthrough = false;
            self.dropped_by.insert("*".into(), at);
        }
        self.known = next;
    }
}

deserialize_via_parser!(Pipeline, parse);

impl Serialize for Pipeline {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(s)
    }
}

fn valid_path(p: &str) -> bool {
    !p.is_empty() && !p.starts_with('$') && p.split('.').all(|s| !s.is_empty())
}

pub(crate) fn parse(v: &Value, path: &str, cx: &mut Cx<'_>) -> Option<Pipeline> {
    let Value::Array(items) = v else {
        cx.err(
            path,
            format!(
                "a pipeline must be an array of stages, found {}",
                kind_of(v)
            ),
        );
        return None;
    };
    let before = cx.errors.len();
    let mut stages = Vec::with_capacity(items.len());
    for (i, s) in items.iter().enumerate() {
        if let Some(stage) = parse_stage(s, &item(path, i), cx) {
            stages.push(stage);
        }
    }
    (cx.errors.len() == before).then(|| Pipeline {
        stages,
        json: v.clone(),
    })
}

fn parse_stage(v: &Value, path: &str, cx: &mut Cx<'_>) -> Option<Stage> {
    let Value::Object(m) = v else {
        cx.err(
            path,
            format!(
                "a stage must be an object such as {{\"$match\": {{..}}}}, found {}",
                kind_of(v)
            ),
        );
        return None;
    };
    let Some((name, arg)) = m.iter().next().filter(|_| m.len() == 1) else {
        cx.err(
            path,
            format!(
                "a stage must hold exactly one stage name, found {} keys",
                m.len()
            ),
        );
        return None;
    };
    let p = child(path, name);
    match name.as_str() {
        "$match" => filter::parse(arg, &p, cx).map(Stage::Match),
        "$unwind" => parse_unwind(arg, &p, cx).map(Stage::Unwind),
        "$addFields" | "$set" => parse_add_fields(name, arg, &p, cx).map(Stage::AddFields),
        "$project" => parse_project(arg, &p, cx).map(Stage::Project),
        other => {
            cx.err(
                p,
                format!(
                    "unsupported pipeline stage {other} (supported: {})",
                    STAGES.join(", ")
                ),
            );
            None
        }
    }
}

fn parse_field_ref(s: &str, path: &str, what: &str, cx: &mut Cx<'_>) -> Option<String> {
    match s.strip_prefix('$') {
        Some(rest) if rest.starts_with('$') => {
            cx.err(
                path,
                format!("{s:?}: variables such as $$ROOT are not supported"),
            );
            None
        }
        Some(rest) if valid_path(rest) => Some(rest.to_string()),
        _ => {
            cx.err(
                path,
                format!("{what} must be a field path such as \"$members\", found {s:?}"),
            );
            None
        }
    }
}

fn parse_unwind(v: &Value, path: &str, cx: &mut Cx<'_>) -> Option<Unwind> {
    match v {
        Value::String(s) => parse_field_ref(s, path, "$unwind", cx).map(|path| Unwind {
            path,
            include_array_index: None,
            preserve_null_and_empty_arrays: false,
        }),
        Value::Object(m) => {
            let before = cx.errors.len();
            for k in m.keys() {
                if !matches!(
                    k.as_str(),
                    "path" | "includeArrayIndex" | "preserveNullAndEmptyArrays"
                ) {
                    cx.err(child(path, k), format!("unknown $unwind option {k:?} (expected path, includeArrayIndex, preserveNullAndEmptyArrays)"));
                }
            }
            let p = child(path, "path");
            let unwound = match m.get("path") {
                Some(Value::String(s)) => parse_field_ref(s, &p, "$unwind's path", cx),
                Some(other) => {
                    cx.err(
                        p,
                        format!(
                            "$unwind's path must be a string such as \"$members\", found {}",
                            kind_of(other)
                        ),
                    );
                    None
                }
                None => {
                    cx.err(path, "$unwind needs a \"path\"");
                    None
                }
            };
            let ip = child(path, "includeArrayIndex");
            let include_array_index = match m.get("includeArrayIndex") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if valid_path(s) && !s.contains('.') => Some(s.clone()),
                Some(other) => {
                    cx.err(
                        ip,
                        format!(
                            "includeArrayIndex must be a field name (no '$', no '.'), found {other}"
                        ),
                    );
                    None
                }
            };
            let preserve = match m.get("preserveNullAndEmptyArrays") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    cx.err(
                        child(path, "preserveNullAndEmptyArrays"),
                        format!(
                            "preserveNullAndEmptyArrays must be true or false, found {}",
                            kind_of(other)
                        ),
                    );
                    false
                }
            };
            (cx.errors.len() == before).then_some(Unwind {
                path: unwound?,
                include_array_index,
                preserve_null_and_empty_arrays: preserve,
            })
        }
        other => {
            cx.err(
                path,
                format!(
                    "$unwind takes \"$path\" or {{path, includeArrayIndex?, preserveNullAndEmptyArrays?}}, found {}",
                    kind_of(other)
                ),
            );
            None
        }
    }
}

fn check_output_paths<'a>(
    keys: impl Iterator<Item = &'a String> + Clone,
    path: &str,
    cx: &mut Cx<'_>,
) -> bool {
    let mut ok = true;
    for k in keys.clone() {
        if !valid_path(k) {
            cx.err(child(path, k), format!("{k:?} is not a valid field name"));
            ok = false;
        }
    }
    // MongoDB refuses "a" together with "a.b" in one stage, and so do we.
    for a in keys.clone() {
        for b in keys.clone() {
            if b.len() > a.len() && b.starts_with(a.as_str()) && b.as_bytes()[a.len()] == b'.' {
                cx.err(
                    child(path, b),
                    format!("path collision: {b:?} is inside {a:?}, which the stage also names"),
                );
                ok = false;
            }
        }
    }
    ok
}

fn parse_add_fields(
    name: &str,
    v: &Value,
    path: &str,
    cx: &mut Cx<'_>,
) -> Option<Vec<(String, Expr)>> {
    let Value::Object(m) = v else {
        cx.err(
            path,
            format!("{name} takes an object of fields, found {}", kind_of(v)),
        );
        return None;
    };
    if m.is_empty() {
        cx.err(path, format!("{name} needs at least one field"));
        return None;
    }
    let before = cx.errors.len();
    check_output_paths(m.keys(), path, cx);
    let mut out = Vec::with_capacity(m.len());
    for (k, e) in m {
        if let Some(e) = parse_expr(e, &child(path, k), cx) {
            out.push((k.clone(), e));
        }
    }
    (cx.errors.len() == before).then_some(out)
}

fn parse_project(v: &Value, path: &str, cx: &mut Cx<'_>) -> Option<Project> {
    let Value::Object(m) = v else {
        cx.err(
            path,
            format!("$project takes an object of fields, found {}", kind_of(v)),
        );
        return None;
    };
    if m.is_empty() {
        cx.err(path, "$project needs at least one field");
        return None;
    }
    let before = cx.errors.len();
    check_output_paths(m.keys(), path, cx);
    let mut fields = Vec::with_capacity(m.len());
    for (k, val) in m {
        let p = child(path, k);
        let f = match val {
            Value::Bool(true) => ProjectField::Include,
            Value::Bool(false) => ProjectField::Exclude,
            Value::Number(n) => match n.as_f64() {
                Some(1.0) => ProjectField::Include,
                Some(0.0) => ProjectField::Exclude,
                _ => {
                    cx.err(p, format!("a $project value must be 1, 0, true, false or an expression, found {n} (write {{\"$literal\": {n}}} for a constant)"));
                    continue;
                }
            },
            Value::Object(o) if !o.is_empty() && o.keys().all(|k| !k.starts_with('$')) => {
                cx.err(
                    p,
                    "nested $project objects are not supported: use dotted paths such as \"a.b\": 1",
                );
                continue;
            }
            other => match parse_expr(other, &p, cx) {
                Some(e) => ProjectField::Computed(e),
                None => continue,
            },
        };
        fields.push((k.clone(), f));
    }
    let project = Project { fields };
    let mut inclusion = None;
    let mut exclusion = None;
    for (k, f) in &project.fields {
        if k == "_id" {
            continue;
        }
        match f {
            ProjectField::Exclude => exclusion = exclusion.or(Some(k)),
            _ => inclusion = inclusion.or(Some(k)),
        }
    }
    if let (Some(i), Some(e)) = (inclusion, exclusion) {
        cx.err(
            child(path, e),
            format!("cannot exclude {e:?} in a $project that includes or computes {i:?}: use only inclusions and expressions, or only exclusions (0), apart from _id"),
        );
    }
    (cx.errors.len() == before).then_some(project)
}

fn parse_list(op: &str, v: &Value, min: usize, path: &str, cx: &mut Cx<'_>) -> Option<Vec<Expr>> {
    let Value::Array(items) = v else {
        cx.err(
            path,
            format!("{op} takes an array of expressions, found {}", kind_of(v)),
        );
        return None;
    };
    if items.len() < min {
        cx.err(
            path,
            format!(
                "{op} takes at least {min} expressions, found {}",
                items.len()
            ),
        );
        return None;
    }
    let before = cx.errors.len();
    let out: Vec<Expr> = items
        .iter()
        .enumerate()
        .filter_map(|(i, e)| parse_expr(e, &item(path, i), cx))
        .collect();
    (cx.errors.len() == before).then_some(out)
}

pub(crate) fn parse_expr(v: &Value, path: &str, cx: &mut Cx<'_>) -> Option<Expr> {
    match v {
        Value::String(s) if s.starts_with('$') => {
            parse_field_ref(s, path, "a field path", cx).map(Expr::Path)
        }
        Value::Array(items) => {
            let before = cx.errors.len();
            let out: Vec<Expr> = items
                .iter()
                .enumerate()
                .filter_map(|(i, e)| parse_expr(e, &item(path, i), cx))
                .collect();
            (cx.errors.len() == before).then_some(Expr::Array(out))
        }
        Value::Object(m) if extjson::literal_key(m).is_some() => {
            extjson::check(v, path, cx).then(|| Expr::Literal(v.clone()))
        }
        Value::Object(m) if m.is_empty() => {
            cx.err(
                path,
                "an empty object is not an expression (write {\"$literal\": {}})",
            );
            None
        }
        Value::Object(m) if m.keys().any(|k| k.starts_with('$')) => {
            let Some((op, arg)) = m.iter().next().filter(|_| m.len() == 1) else {
                cx.err(path, "an expression object must hold exactly one operator");
                return None;
            };
            parse_operator(op, arg, &child(path, op), cx)
        }
        Value::Object(m) => {
            let before = cx.errors.len();
            let mut out = Vec::with_capacity(m.len());
            for (k, e) in m {
                let p = child(path, k);
                if k.contains('.') || k.is_empty() {
                    cx.err(
                        p,
                        format!(
                            "{k:?}: a field name inside a document expression cannot contain '.'"
                        ),
                    );
                    continue;
                }
                if let Some(e) = parse_expr(e, &p, cx) {
                    out.push((k.clone(), e));
                }
            }
            (cx.errors.len() == before).then_some(Expr::Object(out))
        }
        _ => Some(Expr::Literal(v.clone())),
    }
}

fn parse_operator(op: &str, arg: &Value, path: &str, cx: &mut Cx<'_>) -> Option<Expr> {
    match op {
        "$literal" => extjson::check(arg, path, cx).then(|| Expr::Literal(arg.clone())),
        "$concat" => parse_list(op, arg, 0, path, cx).map(Expr::Concat),
        "$ifNull" => parse_list(op, arg, 2, path, cx).map(Expr::IfNull),
        "$convert" => parse_convert(arg, path, cx),
        _ => match CastType::from_operator(op) {
            Some(to) => {
                // MongoDB accepts the argument bare or as a one-element array.
                let input = match arg {
                    Value::Array(a) if a.len() == 1 => &a[0],
                    other => other,
                };
                let input = parse_expr(input, path, cx)?;
                Some(Expr::Cast(Box::new(CastExpr {
                    to,
                    input,
                    on_error: None,
                    on_null: None,
                })))
            }
            None => {
                cx.err(
                    path,
                    format!(
                        "unsupported expression operator {op} (supported: {})",
                        EXPRESSION_OPERATORS.join(", ")
                    ),
                );
                None
            }
        },
    }
}

fn parse_convert(v: &Value, path: &str, cx: &mut Cx<'_>) -> Option<Expr> {
    let c = projection::parse_convert_with(v, path, cx, parse_expr)?;
    Some(Expr::Cast(Box::new(CastExpr {
        to: c.to,
        input: c.input,
        on_error: c.on_error,
        on_null: c.on_null,
    })))
}

#[cfg(test)]
mod tests;
