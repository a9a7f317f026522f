//! The queue operations the SQS door added: changing a queue group's settings in place.

use super::*;

fn setting<'a>(described: &'a QueueGroupDescription, key: &str) -> &'a str {
    described
        .settings
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
        .unwrap()
}

#[test]
fn alter_queue_group_changes_settings_on_every_partition_and_refuses_fixed_ones() {
    with_service(BrokerConfig::default(), |service, ctx| async move {
        service.create_topic(&ctx, topic("jobs", 3)).await.unwrap();
        let group = NewQueueGroup {
            topic: "jobs".into(),
            group: "jobs".into(),
            configs: Vec::new(),
        };
        service.create_queue_group(&ctx, group).await.unwrap();
        let changes = vec![
            ("max_deliveries".to_string(), "7".to_string()),
            ("dead_letter_topic".to_string(), "elsewhere".to_string()),
        ];
        service
            .alter_queue_group(&ctx, "jobs", "jobs", changes)
            .await
            .unwrap();
        let described = service
            .describe_queue_group(&ctx, "jobs", "jobs")
            .await
            .unwrap();
        assert_eq!(setting(&described, "max_deliveries"), "7");
        assert_eq!(setting(&described, "dead_letter_topic"), "elsewhere");
        assert_eq!(described.partitions.len(), 3);
        let start = vec![("start".to_string(), "latest".to_string())];
        let refused = service.alter_queue_group(&ctx, "jobs", "jobs", start).await;
        assert_eq!(refused.unwrap_err().kind, ErrorKind::InvalidRequest);
        let fifo = vec![("fifo".to_string(), "header".to_string())];
        let refused = service.alter_queue_group(&ctx, "jobs", "jobs", fifo).await;
        assert_eq!(refused.unwrap_err().kind, ErrorKind::InvalidConfig);
        let bad = vec![("max_deliveries".to_string(), "0".to_string())];
        let refused = service.alter_queue_group(&ctx, "jobs", "jobs", bad).await;
        assert_eq!(refused.unwrap_err().kind, ErrorKind::InvalidConfig);
        let missing = service
            .alter_queue_group(&ctx, "jobs", "nobody", Vec::new())
            .await;
        assert_eq!(missing.unwrap_err().kind, ErrorKind::UnknownQueueGroup);
        let described = service
            .describe_queue_group(&ctx, "jobs", "jobs")
            .await
            .unwrap();
        assert_eq!(
            setting(&described, "max_deliveries"),
            "7",
            "refusals changed nothing"
        );
    });
}
