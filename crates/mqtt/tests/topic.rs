//! Topic names, filters and matching against the examples of §4.7–4.8 of the MQTT 5.0
//! specification, and the subscription tree checked against `matches` filter by filter.

use mqtt::topic::{TopicFilter, matches, validate_topic_filter, validate_topic_name};
use mqtt::{Error, ReasonCode, TopicTree};

/// (filter, topic, matches) from the specification's examples.
const SPEC_TABLE: &[(&str, &str, bool)] = &[
    ("sport/tennis/player1/#", "sport/tennis/player1", true),
    (
        "sport/tennis/player1/#",
        "sport/tennis/player1/ranking",
        true,
    ),
    (
        "sport/tennis/player1/#",
        "sport/tennis/player1/score/wimbledon",
        true,
    ),
    ("sport/#", "sport", true),
    ("#", "sport/tennis", true),
    ("#", "/", true),
    ("sport/tennis/+", "sport/tennis/player1", true),
    ("sport/tennis/+", "sport/tennis/player2", true),
    ("sport/tennis/+", "sport/tennis/player1/ranking", false),
    ("sport/+", "sport", false),
    ("sport/+", "sport/", true),
    ("+/+", "/finance", true),
    ("/+", "/finance", true),
    ("+", "/finance", false),
    ("+", "finance", true),
    ("sport/+/player1", "sport/tennis/player1", true),
    ("sport/+/player1", "sport/tennis/player2", false),
    // Topics starting with $ are not matched by a leading wildcard.
    ("#", "$SYS/monitor/Clients", false),
    ("+/monitor/Clients", "$SYS/monitor/Clients", false),
    ("$SYS/#", "$SYS/monitor/Clients", true),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
    ("$SYS/#", "$SYS", true),
    ("a/#", "a/$b", true),
    // Case and spaces are significant; a leading / is a level of its own.
    ("ACCOUNTS", "Accounts", false),
    ("Accounts payable", "Accounts payable", true),
    ("/finance", "finance", false),
    ("finance", "finance", true),
    ("a//b", "a//b", true),
    ("a/+/b", "a//b", true),
    ("a/b", "a/b/c", false),
    ("a/b/c", "a/b", false),
];

#[test]
fn matching_follows_the_specification_examples() {
    for &(filter, topic, expected) in SPEC_TABLE {
        validate_topic_filter(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        validate_topic_name(topic).unwrap_or_else(|e| panic!("{topic}: {e}"));
        assert_eq!(matches(filter, topic), expected, "{filter} vs {topic}");
    }
}

#[test]
fn filter_validation() {
    for valid in [
        "#",
        "+",
        "sport/tennis/#",
        "+/tennis/#",
        "sport/+/player1",
        "/",
        "a//b",
        "+/+",
        "$SYS/#",
    ] {
        assert_eq!(validate_topic_filter(valid), Ok(()), "{valid}");
    }
    for invalid in [
        "",
        "sport/tennis#",
        "sport/tennis/#/ranking",
        "sport+",
        "#/a",
        "a/++",
        "a\0b",
    ] {
        let error = validate_topic_filter(invalid).expect_err(invalid);
        assert!(
            matches!(error, Error::TopicFilterInvalid { .. }),
            "{invalid}: {error}"
        );
        assert_eq!(error.reason_code(), ReasonCode::TopicFilterInvalid);
    }
    let long = "a".repeat(65_536);
    assert!(validate_topic_filter(&long).is_err());
    assert!(validate_topic_filter(&long[1..]).is_ok());
}

#[test]
fn topic_name_validation() {
    for valid in ["a", "/", "sport/tennis", "$SYS/x", "a b", "é/😀"] {
        assert_eq!(validate_topic_name(valid), Ok(()), "{valid}");
    }
    for invalid in ["", "a/+", "#", "a/b#", "a\0"] {
        let error = validate_topic_name(invalid).expect_err(invalid);
        assert!(
            matches!(error, Error::TopicNameInvalid { .. }),
            "{invalid}: {error}"
        );
    }
    // The message quotes only the start of a long topic.
    let long = format!("{}+", "x".repeat(10_000));
    let message = validate_topic_name(&long)
        .expect_err("wildcard")
        .to_string();
    assert!(message.len() < 300, "{message}");
}

#[test]
fn shared_subscriptions() {
    assert_eq!(
        TopicFilter::parse("$share/consumers/sport/tennis/+"),
        Ok(TopicFilter {
            share_group: Some("consumers"),
            filter: "sport/tennis/+",
        })
    );
    assert_eq!(
        TopicFilter::parse("$share/g/#"),
        Ok(TopicFilter {
            share_group: Some("g"),
            filter: "#",
        })
    );
    assert_eq!(
        TopicFilter::parse("sport/#"),
        Ok(TopicFilter {
            share_group: None,
            filter: "sport/#",
        })
    );
    // `$share` without the slash is an ordinary filter; `$shared/…` too.
    assert!(!TopicFilter::parse("$share").expect("valid").is_shared());
    assert!(
        !TopicFilter::parse("$shared/g/x")
            .expect("valid")
            .is_shared()
    );
    for invalid in [
        "$share/g",
        "$share//x",
        "$share/+/x",
        "$share/#/x",
        "$share/g/",
        "$share/g/a#",
    ] {
        assert!(
            matches!(
                TopicFilter::parse(invalid),
                Err(Error::TopicFilterInvalid { .. })
            ),
            "{invalid}"
        );
    }
}

#[test]
fn the_tree_matches_the_specification_examples() {
    for &(filter, topic, expected) in SPEC_TABLE {
        let mut tree = TopicTree::new();
        tree.insert(filter, filter.to_owned())
            .expect("valid filter");
        let found = tree.matching(topic);
        assert_eq!(!found.is_empty(), expected, "{filter} vs {topic}");
    }
}

#[test]
fn the_tree_finds_exactly_the_matching_filters() {
    let filters: Vec<&str> = SPEC_TABLE.iter().map(|(filter, _, _)| *filter).collect();
    let mut tree = TopicTree::new();
    for filter in &filters {
        tree.insert(filter, (*filter).to_owned()).expect("valid");
    }
    let distinct: std::collections::BTreeSet<&str> = filters.iter().copied().collect();
    assert_eq!(tree.len(), distinct.len());
    for &(_, topic, _) in SPEC_TABLE {
        let mut found: Vec<&str> = tree
            .matching(topic)
            .into_iter()
            .map(String::as_str)
            .collect();
        found.sort_unstable();
        let expected: Vec<&str> = distinct
            .iter()
            .copied()
            .filter(|f| matches(f, topic))
            .collect();
        assert_eq!(found, expected, "{topic}");
    }
}

#[test]
fn the_tree_agrees_with_matches_on_generated_filters_and_topics() {
    let levels = ["a", "b", "", "$x"];
    let mut state = 7u64;
    let mut next = |n: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        (state >> 33) as usize % n
    };
    let mut tree = TopicTree::new();
    let mut filters = Vec::new();
    for _ in 0..300 {
        let depth = 1 + next(4);
        let mut parts: Vec<&str> = (0..depth)
            .map(|_| match next(6) {
                0 => "+",
                _ => levels[next(levels.len())],
            })
            .collect();
        if next(4) == 0 {
            parts.push("#");
        }
        let filter = parts.join("/");
        if filter.is_empty() {
            continue;
        }
        tree.insert(&filter, filter.clone()).expect("valid");
        filters.push(filter);
    }
    filters.sort();
    filters.dedup();
    assert_eq!(tree.len(), filters.len());
    for _ in 0..2_000 {
        let depth = 1 + next(5);
        let topic = (0..depth)
            .map(|_| levels[next(levels.len())])
            .collect::<Vec<_>>()
            .join("/");
        if topic.is_empty() {
            continue;
        }
        let mut found: Vec<&String> = tree.matching(&topic);
        found.sort();
        let expected: Vec<&String> = filters.iter().filter(|f| matches(f, &topic)).collect();
        assert_eq!(found, expected, "{topic}");
    }
    // Removing every filter empties the tree.
    for filter in &filters {
        assert_eq!(tree.remove(filter).as_ref(), Some(filter));
    }
    assert!(tree.is_empty());
    assert!(tree.matching("a/b").is_empty());
}

#[test]
fn tree_insert_get_remove() {
    let mut tree: TopicTree<Vec<&str>> = TopicTree::new();
    assert_eq!(tree.insert("a/+/c", vec!["one"]), Ok(None));
    assert_eq!(tree.insert("a/+/c", vec!["two"]), Ok(Some(vec!["one"])));
    tree.get_or_insert_with("a/#", Vec::new)
        .expect("valid")
        .push("three");
    tree.get_or_insert_with("a/#", Vec::new)
        .expect("valid")
        .push("four");
    assert_eq!(tree.len(), 2);
    assert_eq!(tree.get("a/#"), Some(&vec!["three", "four"]));
    assert_eq!(tree.get("a/+"), None);
    assert_eq!(tree.get("a"), None);
    tree.get_mut("a/+/c").expect("present").push("five");
    let mut found = tree.matching("a/b/c");
    found.sort();
    assert_eq!(found, [&vec!["three", "four"], &vec!["two", "five"]]);
    // `a/#` matches its parent level too.
    assert_eq!(tree.matching("a"), [&vec!["three", "four"]]);
    assert_eq!(tree.remove("a/+"), None);
    assert_eq!(tree.remove("a/+/c"), Some(vec!["two", "five"]));
    assert_eq!(tree.remove("a/+/c"), None);
    assert_eq!(tree.len(), 1);
    // Invalid and shared filters are refused and change nothing.
    assert!(tree.insert("a/#/b", vec![]).is_err());
    assert!(tree.insert("$share/g/a", vec![]).is_err());
    assert!(tree.get_or_insert_with("a+", Vec::new).is_err());
    assert_eq!(tree.len(), 1);
}

#[test]
fn tree_depth_is_bounded_but_topic_depth_is_not() {
    let mut tree = TopicTree::new();
    let deepest = vec!["+"; TopicTree::<()>::MAX_LEVELS].join("/");
    tree.insert(&deepest, "deep").expect("at the limit");
    tree.insert("#", "all").expect("valid");
    let too_deep = format!("{deepest}/+");
    assert!(matches!(
        tree.insert(&too_deep, "deeper"),
        Err(Error::TopicFilterInvalid { .. })
    ));
    // A topic of 32,768 levels walks only as deep as the tree.
    let slashes = "/".repeat(32_767);
    assert_eq!(tree.matching(&slashes), [&"all"]);
    let exact = vec!["x"; TopicTree::<()>::MAX_LEVELS].join("/");
    let mut found = tree.matching(&exact);
    found.sort();
    assert_eq!(found, [&"all", &"deep"]);
}

#[test]
fn for_each_match_visits_each_filter_once() {
    let mut tree = TopicTree::new();
    for filter in ["#", "+/#", "+/+", "a/b", "a/#", "a/b/#", "+/b"] {
        tree.insert(filter, filter).expect("valid");
    }
    let mut visited = Vec::new();
    tree.for_each_match("a/b", |filter| visited.push(*filter));
    visited.sort_unstable();
    assert_eq!(visited, ["#", "+/#", "+/+", "+/b", "a/#", "a/b", "a/b/#"]);
    visited.clear();
    tree.for_each_match("$SYS/b", |filter| visited.push(*filter));
    assert!(visited.is_empty(), "{visited:?}");
}
