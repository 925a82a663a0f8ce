// A `Superuser` cannot arrive in a request body or a job payload: it is not `Deserialize`.
use tenancy::Superuser;

fn main() {
    let _su: Superuser = serde_json::from_str(r#"{"actor":"me","reason":"because"}"#).unwrap();
}
