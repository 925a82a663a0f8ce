// A model is declared with `#[tenant_scoped]`, not by implementing `Model` by hand: a hand-written
// description could name the wrong tenant column. The error says what to write instead. (Copying
// the attribute's whole expansion compiles, and is harmless: the runtime checks every description
// against the database and builds every statement itself; see tests/model_check.rs.)
use tenancy::sqlx::postgres::PgRow;
use tenancy::uuid::Uuid;
use tenancy::{ColumnMeta, ColumnType, Model, ModelMeta, NewModel};

pub struct Note {
    pub id: Uuid,
    pub tenant_id: Uuid,
}

impl Model for Note {
    type New = Note;
    const META: ModelMeta = ModelMeta {
        name: "Note",
        table: "notes",
        tenant_column: "spinner_id",
        columns: &[],
        key: 0,
    };

    fn key(&self) -> Uuid {
        self.id
    }

    fn decode(_: &PgRow, _: Option<&'static [ColumnMeta]>) -> Result<Self, tenancy::sqlx::Error> {
        Err(tenancy::sqlx::Error::RowNotFound)
    }

    fn column(&self, _: usize) -> Option<&dyn ColumnType> {
        None
    }
}

impl NewModel for Note {
    type Model = Note;
    fn column(&self, _: usize) -> Option<&dyn ColumnType> {
        None
    }
}

fn main() {}
