//! Black-box tests of the test site over plain HTTP on loopback: what a browser would get,
//! and what the server records.

use std::net::Ipv4Addr;
use std::time::Duration;

use agentd_testkit::site::layout;
use agentd_testkit::{Effect, Hit, TestSite};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(10);

fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get(client: &reqwest::Client, url: String) -> (u16, String) {
    let response = client.get(url).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn post_effect(client: &reqwest::Client, site: &TestSite, body: &str) -> u16 {
    let response = client
        .post(site.url("/_effect"))
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

fn hit(method: &str, path: &str) -> Hit {
    Hit {
        method: method.into(),
        path: path.into(),
    }
}

#[tokio::test]
async fn pages_serve_with_their_titles_and_are_recorded_as_hits() {
    let site = TestSite::start().await.unwrap();
    let client = http_client();
    assert_eq!(
        site.url("/x"),
        format!("http://127.0.0.1:{}/x", site.addr().port())
    );
    for (path, title) in [
        ("/", "Test site"),
        ("/page2", "Page two"),
        ("/tab", "Second tab"),
        ("/article", "Article"),
        ("/slow?ms=1", "Slow"),
    ] {
        let (status, html) = get(&client, site.url(path)).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            html.contains(&format!("<title>{title}</title>")),
            "{path}: {html}"
        );
        assert!(html.contains("report('loaded'"), "{path} reports loaded");
    }
    let (status, html) = get(&client, site.url("/nowhere?q=<b>")).await;
    assert_eq!(status, 404);
    assert!(html.contains("Not found") && !html.contains("<b>"));

    // The controls are placed from the layout consts.
    let (_, controls) = get(&client, site.url("/")).await;
    assert!(controls.contains("id=\"button\" type=\"button\" style=\"position:absolute;left:100px;top:100px;width:200px;height:60px"));
    assert!(controls.contains(layout::NEEDLE_TEXT));
    assert!(controls.contains("<option value=\"green\">Green</option>"));

    // The instrumentation endpoints stay out of the hits.
    assert_eq!(post_effect(&client, &site, r#"{"kind":"k"}"#).await, 204);
    let (_, listed) = get(&client, site.url("/_hits")).await;
    let expected = vec![
        hit("GET", "/"),
        hit("GET", "/page2"),
        hit("GET", "/tab"),
        hit("GET", "/article"),
        hit("GET", "/slow?ms=1"),
        hit("GET", "/nowhere?q=%3Cb%3E"),
        hit("GET", "/"),
    ];
    assert_eq!(site.hits(), expected);
    assert_eq!(serde_json::from_str::<Vec<Hit>>(&listed).unwrap(), expected);
}

#[tokio::test]
async fn redirect_answers_302_with_the_location() {
    let site = TestSite::start().await.unwrap();
    let client = http_client();
    let response = client
        .get(site.url("/redirect?to=http%3A%2F%2F127.0.0.2%3A9%2Fpage2"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["location"], "http://127.0.0.2:9/page2");
    assert_eq!(get(&client, site.url("/redirect")).await.0, 400);
}

#[tokio::test]
async fn effects_are_recorded_and_wake_a_waiter() {
    let site = TestSite::start().await.unwrap();
    let client = http_client();
    let (found, status) = tokio::join!(
        site.wait_for_effect(|effect| effect.kind == "click", DEADLINE),
        post_effect(
            &client,
            &site,
            r#"{"kind":"click","detail":{"button":"left","x":200}}"#
        ),
    );
    assert_eq!(status, 204);
    let click = Effect {
        kind: "click".into(),
        detail: json!({"button": "left", "x": 200}),
    };
    assert_eq!(found.unwrap(), click);
    assert_eq!(
        post_effect(&client, &site, r#"{"kind":"hover"}"#).await,
        204
    );
    assert_eq!(post_effect(&client, &site, "not json").await, 400);
    let hover = Effect {
        kind: "hover".into(),
        detail: Value::Null,
    };
    assert_eq!(site.effects(), vec![click.clone(), hover.clone()]);
    let (_, listed) = get(&client, site.url("/_effects")).await;
    assert_eq!(
        serde_json::from_str::<Vec<Effect>>(&listed).unwrap(),
        vec![click, hover]
    );

    // Effects already recorded satisfy a wait at once.
    assert!(
        site.wait_for_effect(|effect| effect.kind == "hover", DEADLINE)
            .await
            .is_ok()
    );
    site.clear_effects();
    assert!(site.effects().is_empty());
}

#[tokio::test]
async fn a_wait_that_times_out_lists_the_effects_seen() {
    let site = TestSite::start().await.unwrap();
    let client = http_client();
    post_effect(
        &client,
        &site,
        r#"{"kind":"scroll","detail":{"x":0,"y":400}}"#,
    )
    .await;
    let error = site
        .wait_for_effect(|effect| effect.kind == "submit", Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(
        error.contains(r#"{"kind":"scroll","detail":{"x":0,"y":400}}"#),
        "{error}"
    );
}

#[tokio::test]
async fn a_submission_is_a_hit_and_an_effect() {
    let site = TestSite::start().await.unwrap();
    let client = http_client();
    let (status, html) = get(&client, site.url("/submitted?name=Ada+%3CL%3E")).await;
    assert_eq!(status, 200);
    assert!(html.contains("<title>Submitted</title>") && html.contains("Ada &lt;L&gt;"));
    assert_eq!(site.hits(), vec![hit("GET", "/submitted?name=Ada+%3CL%3E")]);
    let submit = site
        .wait_for_effect(|effect| effect.kind == "submit", DEADLINE)
        .await
        .unwrap();
    assert_eq!(submit.detail, json!({"name": "Ada <L>"}));
}

#[tokio::test]
async fn start_on_serves_on_another_loopback_address_only() {
    let ip = Ipv4Addr::new(127, 0, 0, 2);
    let site = TestSite::start_on(ip).await.unwrap();
    assert_eq!(site.addr().ip(), ip);
    assert!(site.url("/").starts_with("http://127.0.0.2:"));
    let (status, html) = get(&http_client(), site.url("/page2")).await;
    assert_eq!(status, 200);
    assert!(html.contains("<title>Page two</title>"));
    let refused = TestSite::start_on(Ipv4Addr::new(10, 0, 0, 1))
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn slow_waits_and_rects_center_and_contain() {
    let site = TestSite::start().await.unwrap();
    let client = http_client();
    let started = std::time::Instant::now();
    let (status, html) = get(&client, site.url("/slow?ms=300")).await;
    assert_eq!(status, 200);
    assert!(html.contains("after 300 ms"));
    assert!(started.elapsed() >= Duration::from_millis(300));

    assert_eq!(layout::BUTTON.center(), (200.0, 130.0));
    assert!(layout::BUTTON.contains(200.0, 130.0) && !layout::BUTTON.contains(300.0, 130.0));
}
