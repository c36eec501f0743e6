//! check_policy_service: the session's facts as a Postfix policy request
//! (SMTPD_POLICY_README), and the server's action applied like an access
//! table's result. A server that cannot be asked gives the service's
//! default_action (451 4.3.5 by default), never a silent pass.

use mailgate_config::policy::PolicySpec;
use mailgate_config::restrictions::Subject;
use mailgate_log::warning;
use mailgate_policy::{Request, state};

use super::{Decision, Evaluator, State};

impl Evaluator<'_> {
    pub(super) async fn policy_service(
        &self,
        st: &mut State,
        spec: &PolicySpec,
        name: &str,
        class: &str,
        default_access: Option<Subject>,
    ) -> Decision {
        let Some(client) = self.settings.policy_clients.get(&spec.argument) else {
            // Settings made a client for every service in the lists.
            warning!("no policy client for {}", spec.argument);
            return self.server_error(st);
        };
        let request = request(st, &client.settings().policy_context);
        let action = client.query_or_default(&request).await;
        self.table_result(
            st,
            &spec.argument,
            action.as_str(),
            name,
            class,
            default_access,
        )
        .await
    }
}

/// Every attribute Postfix's smtpd sends, from what the session knows.
fn request(st: &State, policy_context: &str) -> Request {
    let protocol_state = match st.stage {
        "CONNECT" => state::CONNECT,
        "EHLO" => state::EHLO,
        "HELO" => state::HELO,
        "MAIL" => state::MAIL,
        "DATA" => state::DATA,
        "END-OF-MESSAGE" => state::END_OF_MESSAGE,
        "VRFY" => state::VRFY,
        _ => state::RCPT,
    };
    let whole_message = matches!(st.stage, "DATA" | "END-OF-MESSAGE");
    Request {
        protocol_name: st.protocol.to_string(),
        client_address: st.peer.addr.to_string(),
        client_name: st.peer.name.clone(),
        client_port: st.peer.port.to_string(),
        reverse_client_name: st.peer.reverse_name.clone(),
        server_address: st.server.map(|s| s.ip().to_string()).unwrap_or_default(),
        server_port: st.server.map(|s| s.port().to_string()).unwrap_or_default(),
        helo_name: st.helo.clone().unwrap_or_default(),
        sender: st.sender.clone().unwrap_or_default(),
        recipient: st.recipient.clone().unwrap_or_default(),
        recipient_count: if whole_message {
            st.rcpt_count as u64
        } else {
            0
        },
        queue_id: st.queue_id.clone().unwrap_or_default(),
        instance: st.instance.clone(),
        size: st.size,
        stress: if st.stress {
            "yes".into()
        } else {
            String::new()
        },
        policy_context: policy_context.to_string(),
        compatibility_level: "3.6".to_string(),
        mail_version: concat!("mailgate ", env!("CARGO_PKG_VERSION")).to_string(),
        ..Request::smtpd(protocol_state)
    }
}
