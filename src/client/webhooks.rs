//! The admin API's webhook calls (`latchkey webhook …`).

use http::Method;

use super::{Client, ClientError, percent};
use crate::api::{DeliveryInfo, NewWebhook, WebhookInfo};

impl Client {
    /// `POST /v1/admin/webhooks`: the answer holds the secret, once.
    pub async fn add_webhook(&self, request: &NewWebhook) -> Result<WebhookInfo, ClientError> {
        self.call(Method::POST, "/v1/admin/webhooks", None, Some(request))
            .await
    }

    /// `GET /v1/admin/webhooks`.
    pub async fn webhooks(&self, tenant: Option<&str>) -> Result<Vec<WebhookInfo>, ClientError> {
        let path = match tenant {
            Some(t) => format!("/v1/admin/webhooks?tenant={}", percent(t)),
            None => "/v1/admin/webhooks".to_owned(),
        };
        self.call(Method::GET, &path, None, None::<&()>).await
    }

    /// `DELETE /v1/admin/webhooks/{id}`.
    pub async fn remove_webhook(&self, id: i64) -> Result<(), ClientError> {
        self.delete(&format!("/v1/admin/webhooks/{id}")).await
    }

    /// `GET /v1/admin/webhooks/deliveries`, newest first.
    pub async fn webhook_deliveries(
        &self,
        tenant: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Vec<DeliveryInfo>, ClientError> {
        let mut query = Vec::new();
        if let Some(t) = tenant {
            query.push(format!("tenant={}", percent(t)));
        }
        if let Some(n) = limit {
            query.push(format!("limit={n}"));
        }
        let path = if query.is_empty() {
            "/v1/admin/webhooks/deliveries".to_owned()
        } else {
            format!("/v1/admin/webhooks/deliveries?{}", query.join("&"))
        };
        self.call(Method::GET, &path, None, None::<&()>).await
    }
}
