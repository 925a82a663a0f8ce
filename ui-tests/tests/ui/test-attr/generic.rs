// The runner calls the body itself: nothing can choose its type parameters.
#[tenancy::test]
async fn t<T: Default>() {
    let _ = T::default();
}

fn main() {}
