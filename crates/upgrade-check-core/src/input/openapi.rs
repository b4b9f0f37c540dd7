//! What a service's OpenAPI document (FastAPI's `/openapi.json`, utoipa's,
//! flask-smorest's…) says about the JSON bodies its operations take: each
//! field's bounds, formats and enums, by JSON pointer, for exploration to
//! try the values just past them.

use std::collections::BTreeMap;

use serde_json::Value;

/// What one field of a request body accepts, as the document says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bounds {
    pub max_length: Option<usize>,
    pub min_length: Option<usize>,
    pub maximum: Option<f64>,
    pub minimum: Option<f64>,
    pub format: Option<String>,
    /// The string values it takes, when it names them.
    pub one_of: Vec<String>,
}

impl Bounds {
    fn is_empty(&self) -> bool {
        *self == Bounds::default()
    }
}

/// The bodies of a service's operations, by method and path template.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    operations: Vec<Operation>,
}

#[derive(Debug, Clone)]
struct Operation {
    method: String,
    /// `/items/{item_id}`, split into segments.
    path: Vec<String>,
    fields: BTreeMap<String, Bounds>,
}

impl Schema {
    /// The operations of an OpenAPI 3 document and what their JSON bodies'
    /// fields accept; a document it cannot read gives none.
    pub fn read(document: &Value) -> Schema {
        let mut operations = Vec::new();
        let Some(paths) = document.get("paths").and_then(Value::as_object) else {
            return Schema::default();
        };
        for (path, methods) in paths {
            let Some(methods) = methods.as_object() else {
                continue;
            };
            for (method, operation) in methods {
                let body = operation
                    .pointer("/requestBody/content/application~1json/schema")
                    .map(|schema| resolved(document, schema));
                let mut fields = BTreeMap::new();
                if let Some(body) = body {
                    collect(document, body, "", &mut fields, 0);
                }
                if !fields.is_empty() {
                    operations.push(Operation {
                        method: method.to_ascii_uppercase(),
                        path: segments(path),
                        fields,
                    });
                }
            }
        }
        Schema { operations }
    }

    /// The bounded fields of the body `method path` takes (`path` as a step
    /// sends it, its query left out), by JSON pointer.
    pub fn fields(&self, method: &str, path: &str) -> Option<&BTreeMap<String, Bounds>> {
        let sent = segments(path.split('?').next().unwrap_or(path));
        self.operations
            .iter()
            .find(|operation| {
                operation.method.eq_ignore_ascii_case(method)
                    && operation.path.len() == sent.len()
                    && operation.path.iter().zip(&sent).all(|(template, sent)| {
                        template == sent || (template.starts_with('{') && template.ends_with('}'))
                    })
            })
            .map(|operation| &operation.fields)
    }

    /// How many operations' bodies it knows fields of.
    pub fn operations(&self) -> usize {
        self.operations.len()
    }
}

fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|segment| !segment.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `schema`, its `$ref` followed within the document; an optional field's
/// `anyOf: [X, null]` (pydantic's) taken as X.
fn resolved<'d>(document: &'d Value, schema: &'d Value) -> &'d Value {
    let mut schema = schema;
    for _ in 0..8 {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            match reference
                .strip_prefix('#')
                .and_then(|pointer| document.pointer(pointer))
            {
                Some(target) => schema = target,
                None => return schema,
            }
            continue;
        }
        let branches = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Value::as_array);
        if let Some(branches) = branches {
            let kept: Vec<&Value> = branches
                .iter()
                .filter(|branch| branch.get("type").and_then(Value::as_str) != Some("null"))
                .collect();
            if let [only] = kept.as_slice() {
                schema = only;
                continue;
            }
        }
        return schema;
    }
    schema
}

/// Every bounded field under `schema`, nested objects included.
fn collect(
    document: &Value,
    schema: &Value,
    at: &str,
    fields: &mut BTreeMap<String, Bounds>,
    depth: usize,
) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    if depth > 4 {
        return;
    }
    for (name, property) in properties {
        let property = resolved(document, property);
        let pointer = format!("{at}/{}", name.replace('~', "~0").replace('/', "~1"));
        let number = |key: &str| property.get(key).and_then(Value::as_f64);
        let length = |key: &str| {
            property
                .get(key)
                .and_then(Value::as_u64)
                .and_then(|length| usize::try_from(length).ok())
        };
        let bounds = Bounds {
            max_length: length("maxLength"),
            min_length: length("minLength").filter(|length| *length > 0),
            maximum: number("maximum"),
            minimum: number("minimum"),
            format: property
                .get("format")
                .and_then(Value::as_str)
                .map(str::to_owned),
            one_of: property
                .get("enum")
                .and_then(Value::as_array)
                .map(|values| {
                    values
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        };
        if !bounds.is_empty() {
            fields.insert(pointer.clone(), bounds);
        }
        collect(document, property, &pointer, fields, depth + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As FastAPI 0.115 with pydantic 2 writes a model's fields.
    fn document() -> Value {
        serde_json::json!({
            "openapi": "3.1.0",
            "paths": {
                "/auth/signup": {"post": {"requestBody": {"content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/SignUp"}}}}}},
                "/items/{item_id}": {"put": {"requestBody": {"content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Item"}}}}}},
                "/health": {"get": {}}
            },
            "components": {"schemas": {
                "SignUp": {"type": "object", "properties": {
                    "username": {"type": "string", "maxLength": 32, "minLength": 3},
                    "password": {"type": "string", "minLength": 8},
                    "email": {"anyOf": [{"type": "string", "format": "email"}, {"type": "null"}]}
                }},
                "Item": {"type": "object", "properties": {
                    "kind": {"$ref": "#/components/schemas/Kind"},
                    "price": {"type": "number", "minimum": 0, "maximum": 1000},
                    "owner": {"$ref": "#/components/schemas/Owner"}
                }},
                "Kind": {"type": "string", "enum": ["book", "pen"]},
                "Owner": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 10}}}
            }}
        })
    }

    #[test]
    fn each_operation_s_fields_are_read_through_references_and_optional_types() {
        let schema = Schema::read(&document());
        assert_eq!(schema.operations(), 2);
        let signup = schema.fields("POST", "/auth/signup").unwrap();
        assert_eq!(signup["/username"].max_length, Some(32));
        assert_eq!(signup["/username"].min_length, Some(3));
        assert_eq!(signup["/password"].min_length, Some(8));
        assert_eq!(signup["/email"].format.as_deref(), Some("email"));
        // A template's parameter matches any segment; a query is no part of it.
        let item = schema.fields("put", "/items/42?dry-run=1").unwrap();
        assert_eq!(item["/kind"].one_of, ["book", "pen"]);
        assert_eq!(
            (item["/price"].minimum, item["/price"].maximum),
            (Some(0.0), Some(1000.0))
        );
        assert_eq!(item["/owner/name"].max_length, Some(10));
        assert!(schema.fields("POST", "/items/42").is_none());
        assert!(schema.fields("GET", "/health").is_none());
        assert_eq!(
            Schema::read(&serde_json::json!({"swagger": "2.0"})).operations(),
            0
        );
    }
}
