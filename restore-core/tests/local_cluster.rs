//! The test support itself: a database to work in and fingerprints that compare content.

mod support;

use support::{
    create_database, database_exists, database_url, drop_database, list_databases, psql,
    table_fingerprint,
};

const ROWS: &str = "CREATE TABLE note (id int PRIMARY KEY, body text); \
                    INSERT INTO note VALUES (2, E'tab\\there'), (1, 'plain'), (3, NULL);";
const SAME_ROWS_OTHER_ORDER: &str = "CREATE TABLE note (id int PRIMARY KEY, body text); \
                    INSERT INTO note VALUES (3, NULL), (1, 'plain'), (2, E'tab\\there');";

#[test]
fn fingerprint_counts_rows_and_ignores_physical_order() {
    let url = database_url();
    let (first, second) = ("sr_support_first", "sr_support_second");
    for db in [first, second] {
        drop_database(db);
        create_database(db);
    }
    assert!(database_exists(first));
    assert!(list_databases().iter().any(|name| name == second));

    psql(&url, first, ROWS);
    psql(&url, second, SAME_ROWS_OTHER_ORDER);
    let fingerprint = table_fingerprint(&url, first);

    assert_eq!(fingerprint.len(), 1);
    assert_eq!(
        (fingerprint[0].0.as_str(), fingerprint[0].1),
        ("public.note", 3)
    );
    assert_eq!(fingerprint[0].2.len(), 32);
    assert_eq!(fingerprint, table_fingerprint(&url, second));

    psql(
        &url,
        second,
        "UPDATE note SET body = 'changed' WHERE id = 1",
    );
    assert_ne!(fingerprint, table_fingerprint(&url, second));

    for db in [first, second] {
        drop_database(db);
        assert!(!database_exists(db));
    }
}

#[test]
fn empty_database_has_an_empty_fingerprint() {
    let url = database_url();
    drop_database("sr_support_empty");
    create_database("sr_support_empty");

    assert_eq!(table_fingerprint(&url, "sr_support_empty"), Vec::new());

    drop_database("sr_support_empty");
}
