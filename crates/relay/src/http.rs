//! The relay's HTTP side: the page, health, metrics, the room API, the client config, and
//! the WebSocket upgrade.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::assets;
use crate::certs::{CertHash, CertStore};
use crate::server::{CoreEvent, Shared};

/// What the HTTP handlers need.
#[derive(Debug, Clone)]
pub struct HttpState {
    /// Connection state (shared with the transports).
    pub shared: Arc<Shared>,
    /// The WebTransport certificates, for `/api/config`.
    pub certs: Arc<RwLock<CertStore>>,
    /// Where clients reach WebTransport.
    pub webtransport_url: String,
    /// Where clients reach the WebSocket fallback.
    pub websocket_url: String,
    /// This relay among relays (the backplane's state for `/health`).
    pub cluster: Arc<crate::cluster::Cluster>,
}

/// The router.
pub fn router(state: HttpState) -> Router {
    let shared = state.shared.clone();
    Router::new()
        .route("/", get(index))
        .route(
            "/assets/lockstep-demo.js",
            get(|h: HeaderMap| async move { assets::script(assets::DEMO_JS, &h) }),
        )
        .route(
            "/assets/lockstep-jellyfin.js",
            get(|h: HeaderMap| async move { assets::script(assets::JELLYFIN_JS, &h) }),
        )
        .route(
            "/assets/lockstep.mjs",
            get(|h: HeaderMap| async move { assets::script(assets::LIBRARY_JS, &h) }),
        )
        .route(
            assets::TEST_CLIP_PATH,
            get(|h: HeaderMap| async move { assets::test_clip(&h) }),
        )
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route(
            "/api/rooms",
            get(rooms)
                .post(create_room)
                .layer(axum::extract::DefaultBodyLimit::max(
                    lockstep_proto::limits::MAX_CLIENT_FRAME,
                )),
        )
        .route("/api/rooms/{id}", get(room))
        .route("/api/config", get(config))
        .with_state(state)
        .merge(
            Router::new()
                .route("/ws", get(crate::ws::upgrade))
                .with_state(shared),
        )
}

async fn index() -> Response {
    // The shell is tiny; never cache it, so a relay upgrade shows at once.
    (
        [(header::CACHE_CONTROL, "no-cache")],
        Html(assets::INDEX_HTML),
    )
        .into_response()
}

#[derive(Serialize)]
struct Health {
    /// `ok`, or `degraded` while the backplane is unusable: the relay still serves the rooms
    /// it holds, and says so.
    status: &'static str,
    version: &'static str,
    protocol_version: u16,
    #[serde(flatten)]
    cluster: crate::cluster::ClusterHealth,
}

async fn health(State(state): State<HttpState>) -> Json<Health> {
    let cluster = state.cluster.health();
    Json(Health {
        status: if cluster.backplane.connected {
            "ok"
        } else {
            "degraded"
        },
        version: env!("CARGO_PKG_VERSION"),
        protocol_version: lockstep_proto::limits::PROTOCOL_VERSION,
        cluster,
    })
}

async fn metrics(State(state): State<HttpState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.shared.metrics.render(),
    )
        .into_response()
}

async fn rooms(State(state): State<HttpState>) -> Response {
    let (tx, rx) = oneshot::channel();
    if state.shared.core.send(CoreEvent::Rooms(tx)).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match rx.await {
        Ok(rooms) => Json(rooms).into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

async fn room(State(state): State<HttpState>, Path(id): Path<String>) -> Response {
    let (tx, rx) = oneshot::channel();
    if state
        .shared
        .core
        .send(CoreEvent::Room(id, tx))
        .await
        .is_err()
    {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match rx.await {
        Ok(Some(room)) => Json(room).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no such public room").into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// The body of `POST /api/rooms`: the fields of a `create_room` message.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRoom {
    name: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    media: Option<lockstep_proto::message::Media>,
    #[serde(default)]
    mode: lockstep_proto::message::PolicyMode,
    #[serde(default)]
    options: Option<lockstep_proto::message::RoomOptions>,
}

#[derive(Serialize)]
struct ApiError {
    code: &'static str,
    message: String,
}

fn api_error(
    status: StatusCode,
    code: lockstep_proto::ErrorCode,
    message: impl Into<String>,
) -> Response {
    (
        status,
        Json(ApiError {
            code: code.name(),
            message: message.into(),
        }),
    )
        .into_response()
}

#[derive(Serialize)]
struct Created {
    id: String,
    invite: String,
}

/// `POST /api/rooms`: creates a room nobody is in yet; whoever joins first hosts it. Allowed
/// when the caller may create rooms: a Bearer token with `create_rooms`, or anonymously when
/// the relay lets anonymous clients create rooms.
async fn create_room(
    State(state): State<HttpState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    use lockstep_proto::ErrorCode;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let identity = match crate::auth::authenticate(
        token,
        &state.shared.auth,
        crate::clock::ServerClock::unix_seconds(),
    ) {
        Ok(identity) => identity,
        Err(e) => {
            state.shared.metrics.auth_failure();
            return api_error(StatusCode::UNAUTHORIZED, e.code(), e.to_string());
        }
    };
    if !identity.may_create_rooms {
        return api_error(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "you may not create rooms",
        );
    }
    let new: NewRoom = match serde_json::from_slice(&body) {
        Ok(n) => n,
        Err(e) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidField,
                e.to_string(),
            );
        }
    };
    let owner = match &identity.user_id {
        Some(user) => format!("user:{user}"),
        None => format!("ip:{}", peer.ip()),
    };
    let request = lockstep_proto::message::CreateRoom {
        req: None,
        name: new.name,
        password: new.password,
        media: new.media,
        mode: new.mode,
        options: new.options,
    };
    let (tx, rx) = oneshot::channel();
    let event = CoreEvent::CreateRoom {
        owner,
        request,
        reply: tx,
    };
    if state.shared.core.send(event).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match rx.await {
        Ok(Ok((id, invite))) => (
            StatusCode::CREATED,
            Json(Created {
                id: id.as_str().to_string(),
                invite,
            }),
        )
            .into_response(),
        Ok(Err((code, message))) => {
            let status = match code {
                ErrorCode::TooManyRooms => StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::MediaNotAllowed | ErrorCode::Forbidden => StatusCode::FORBIDDEN,
                ErrorCode::InvalidField => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            api_error(status, code, message)
        }
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

#[derive(Serialize)]
struct ClientConfig {
    protocol_version: u16,
    /// This relay's id among relays.
    relay_id: String,
    webtransport: WebTransportConfig,
    websocket: WebSocketConfig,
    /// The other relays alive on the same backplane, for a client to move to when this one
    /// is gone (empty for a relay alone).
    relays: Vec<PeerConfig>,
}

#[derive(Serialize)]
struct PeerConfig {
    id: String,
    webtransport: WebTransportConfig,
    websocket: WebSocketConfig,
}

#[derive(Serialize)]
struct WebTransportConfig {
    url: String,
    certificate_hashes: Vec<CertHash>,
}

#[derive(Serialize)]
struct WebSocketConfig {
    url: String,
}

async fn config(State(state): State<HttpState>) -> Response {
    let hashes = state
        .certs
        .read()
        .map(|c| c.published_hashes(SystemTime::now()))
        .unwrap_or_default();
    (
        [
            // Hashes change on rotation: never cache.
            (header::CACHE_CONTROL, "no-store"),
            // Public facts, read by pages on other origins (the Jellyfin overlay).
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        Json(ClientConfig {
            protocol_version: lockstep_proto::limits::PROTOCOL_VERSION,
            relay_id: state.cluster.relay_id().to_string(),
            webtransport: WebTransportConfig {
                url: state.webtransport_url.clone(),
                certificate_hashes: hashes,
            },
            websocket: WebSocketConfig {
                url: state.websocket_url.clone(),
            },
            relays: state
                .cluster
                .peers()
                .into_iter()
                .map(|p| PeerConfig {
                    id: p.id,
                    webtransport: WebTransportConfig {
                        url: p.webtransport,
                        certificate_hashes: p
                            .certificate_hashes
                            .into_iter()
                            .map(|value| CertHash {
                                algorithm: "sha-256",
                                value,
                            })
                            .collect(),
                    },
                    websocket: WebSocketConfig { url: p.websocket },
                })
                .collect(),
        }),
    )
        .into_response()
}

/// `host:port` for URLs: IPv6 in brackets.
pub fn authority(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    }
}
