//! Choosing the task (route) of a request and the ordered lanes to try (DESIGN "How a request
//! picks its task"): the `x-switchyard-task` header; else the `model` field as a route, a lane
//! (alone, unless fallback is asked for) or an alias; a request for the `default` route first
//! tries the `when` rules of the other routes, in file order.

use crate::config::{Config, Target, When, glob_match};
use crate::error::GatewayError;
use switchyard_protocol::openai::ChatRequest;

/// What the caller asked for beyond the body (from headers or CLI flags).
#[derive(Debug, Clone, Default)]
pub struct Hints {
    /// `x-switchyard-task`.
    pub task: Option<String>,
    /// `x-switchyard-premium: allow`.
    pub premium: bool,
    /// `x-switchyard-fallback: on`: a request for one lane may fall back to the default route.
    pub fallback: bool,
    /// `x-switchyard-local: only` / `brain --local`: never send a byte off this machine.
    pub local_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The route's name; for a lane asked by name, the lane's name.
    pub route: String,
    pub lanes: Vec<String>,
    /// Premium lanes may be used.
    pub premium: bool,
    /// Only local lanes may be used.
    pub local_only: bool,
}

pub fn plan(config: &Config, req: &ChatRequest, hints: &Hints) -> Result<Plan, GatewayError> {
    let routes = || config.routes.keys().cloned().collect::<Vec<_>>().join(", ");
    if let Some(task) = &hints.task {
        return match config.routes.get(task) {
            Some(_) => Ok(route_plan(config, task, hints)),
            None => Err(GatewayError::UnknownTask {
                task: task.clone(),
                routes: routes(),
            }),
        };
    }
    let model = req.model.as_str();
    let target = if config.routes.contains_key(model) {
        Target::Route(model.to_owned())
    } else if config.lanes.contains_key(model) {
        Target::Lane(model.to_owned())
    } else if let Some(a) = config.aliases.iter().find(|a| glob_match(&a.pattern, model)) {
        a.target.clone()
    } else {
        return Err(GatewayError::UnknownModel {
            model: model.to_owned(),
            routes: routes(),
            lanes: config.lanes.keys().cloned().collect::<Vec<_>>().join(", "),
        });
    };
    match target {
        Target::Lane(lane) => {
            let mut lanes = vec![lane.clone()];
            if hints.fallback
                && let Some(d) = config.routes.get("default")
            {
                lanes.extend(d.chain.iter().filter(|l| **l != lane).cloned());
            }
            Ok(Plan {
                route: lane,
                lanes,
                premium: true,
                local_only: hints.local_only,
            })
        }
        Target::Route(r) if r == "default" => {
            let by_rule = config
                .routes
                .values()
                .find(|route| route.name != "default" && route.when.as_ref().is_some_and(|w| matches(w, req)));
            Ok(route_plan(
                config,
                by_rule.map_or("default", |r| r.name.as_str()),
                hints,
            ))
        }
        Target::Route(r) => Ok(route_plan(config, &r, hints)),
    }
}

fn route_plan(config: &Config, name: &str, hints: &Hints) -> Plan {
    let route = &config.routes[name];
    Plan {
        route: name.to_owned(),
        lanes: route.chain.clone(),
        premium: route.premium || hints.premium,
        local_only: route.local_only || hints.local_only,
    }
}

/// Do all of the rule's conditions hold for this request?
pub fn matches(w: &When, req: &ChatRequest) -> bool {
    w.min_input_tokens.is_none_or(|n| req.estimate_input_tokens() >= n)
        && w.has_images.is_none_or(|v| req.has_images() == v)
        && w.has_tools.is_none_or(|v| req.has_tools() == v)
        && w.thinking.is_none_or(|v| req.wants_thinking() == v)
        && w.model_glob.as_ref().is_none_or(|g| glob_match(g, &req.model))
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used)]
    use super::*;
    use crate::config::{Env, from_str};

    const CFG: &str = r#"
providers:
  o: { preset: ollama }
lanes:
  a: { provider: o, model: ma }
  b: { provider: o, model: mb }
  c: { provider: o, model: mc }
routes:
  default: [a, b]
  vision: { chain: [c], when: { has_images: true } }
  long: { chain: [b], when: { min_input_tokens: 100 } }
  tools: { chain: [c, a], when: { has_tools: true, model_glob: "claude-*" } }
  paid: { chain: [c], premium: true }
aliases:
  "claude-haiku-*": paid
  "claude-*": default
  "just-c": c
"#;

    fn req(model: &str, extra: serde_json::Value) -> ChatRequest {
        let mut v = serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    fn p(model: &str, extra: serde_json::Value, hints: Hints) -> Result<Plan, GatewayError> {
        let cfg = from_str(CFG, "t", &Env::fixed([])).unwrap();
        plan(&cfg, &req(model, extra), &hints)
    }

    fn none() -> serde_json::Value {
        serde_json::json!({})
    }

    #[test]
    fn header_then_model_then_alias() {
        let h = Hints {
            task: Some("long".into()),
            ..Default::default()
        };
        assert_eq!(p("a", none(), h).unwrap().route, "long");
        assert_eq!(
            p("paid", none(), Hints::default()).unwrap(),
            Plan {
                route: "paid".into(),
                lanes: vec!["c".into()],
                premium: true,
                local_only: false
            }
        );
        assert_eq!(p("b", none(), Hints::default()).unwrap().lanes, ["b"]);
        let h = Hints {
            fallback: true,
            ..Default::default()
        };
        assert_eq!(p("b", none(), h).unwrap().lanes, ["b", "a"]);
        assert_eq!(p("claude-haiku-4-5", none(), Hints::default()).unwrap().route, "paid");
        assert_eq!(p("claude-opus-5", none(), Hints::default()).unwrap().route, "default");
        assert_eq!(p("just-c", none(), Hints::default()).unwrap().route, "c");
        assert!(!p("default", none(), Hints::default()).unwrap().premium);
        assert!(
            p(
                "default",
                none(),
                Hints {
                    premium: true,
                    ..Default::default()
                }
            )
            .unwrap()
            .premium
        );
    }

    #[test]
    fn unknown_names_list_what_exists() {
        let e = p("gpt-9", none(), Hints::default()).unwrap_err();
        assert_eq!(e.status(), 404);
        assert!(
            e.to_string().contains("routes are: default, vision, long, tools, paid"),
            "{e}"
        );
        let e = p(
            "a",
            none(),
            Hints {
                task: Some("nope".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.code(), "task_not_found");
    }

    #[test]
    fn when_rules_apply_to_the_default_route_in_order() {
        let img = serde_json::json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]});
        assert_eq!(p("default", img, Hints::default()).unwrap().route, "vision");
        let long = serde_json::json!({"messages": [{"role": "user", "content": "x".repeat(400)}]});
        assert_eq!(p("claude-opus-5", long, Hints::default()).unwrap().route, "long");
        let tools = serde_json::json!({"tools": [{"type": "function", "function": {"name": "f"}}]});
        assert_eq!(
            p("claude-opus-5", tools.clone(), Hints::default()).unwrap().route,
            "tools"
        );
        // model_glob does not match "default", so the tools rule does not apply.
        assert_eq!(p("default", tools, Hints::default()).unwrap().route, "default");
        // Naming a route other than default skips the rules.
        let img = serde_json::json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]});
        assert_eq!(p("long", img, Hints::default()).unwrap().route, "long");
    }
}
