pub(crate) async fn load() {}
